//! certs/README.md (issue 16): its commands, run as written against a real gateway on
//! certificates from `certs/make-dev-certs.sh`, do what their text says: 200 without a
//! client certificate on an ordinary route, 403 on a `client_cert = "required"` one, 200 with
//! the certificate, 127.0.0.1 named by the server certificate, and a bound token refused
//! without a certificate and over another one, each with its own description.
//!
//! Only the scratch directory (for `certs/dev` and `/tmp/upstream`) and the loopback ports
//! are replaced.

#[path = "support/shell.rs"]
mod shell;

use shell::{free_port, run_script, sh_blocks};

#[test]
fn the_certs_readme_commands_do_what_their_text_says() {
    let readme = include_str!("../certs/README.md");
    let mut script = Vec::new();
    for heading in [
        "## Try it",
        "## Call it with curl",
        "## Certificate-bound tokens",
    ] {
        script.extend(sh_blocks(readme, heading));
    }
    let script = script.join("\n");
    let scratch =
        std::env::temp_dir().join(format!("authgate-certs-readme-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let dev = scratch.join("dev");
    let (http, https, admin, upstream) = (free_port(), free_port(), free_port(), free_port());
    let script = script
        .replace(
            "certs/make-dev-certs.sh",
            &format!("certs/make-dev-certs.sh {}", dev.display()),
        )
        .replace("certs/dev/", &format!("{}/", dev.display()))
        .replace("/tmp/upstream", scratch.join("upstream").to_str().unwrap())
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"))
        .replace("127.0.0.1:8443", &format!("127.0.0.1:{https}"))
        .replace("localhost:8443", &format!("localhost:{https}"))
        .replace("127.0.0.1:9090", &format!("127.0.0.1:{admin}"))
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{upstream}"))
        .replace("http.server 9000", &format!("http.server {upstream}"));
    let (ok, out) = run_script(&script, std::time::Duration::from_secs(40));
    std::fs::remove_dir_all(&scratch).ok();
    assert!(ok, "the commands failed:\n{out}");

    // Every `curl -i`, in the README's order (a status line may follow a JSON body that ends
    // without a newline).
    let stdout = out.split("--- stderr ---").next().unwrap_or_default();
    let statuses: Vec<&str> = stdout
        .split("HTTP/")
        .skip(1)
        .filter(|rest| ["1.0 ", "1.1 ", "2 "].iter().any(|v| rest.starts_with(v)))
        .filter_map(|rest| rest.split(' ').nth(1))
        .collect();
    assert_eq!(
        statuses,
        ["200", "403", "200", "200", "200", "401", "401"],
        "{out}"
    );
    assert!(out.contains("client_certificate_required"), "{out}");
    assert!(out.contains("ALPN: server accepted h2"), "{out}");
    assert!(
        out.contains("the token is bound to a client certificate and none was presented"),
        "{out}"
    );
    assert!(
        out.contains("the token is bound to a different client certificate"),
        "{out}"
    );
}
