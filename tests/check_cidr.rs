//! `authgate check` refuses a CIDR with host bits in any list (issue 12 item 3, SPEC §2): exit
//! 1, and stderr names the key, the element and the line. The same list without host bits
//! passes, so the refusal is about the host bits and nothing else.

use std::process::Command;

fn check(name: &str, network: &str, route_allow: &str) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!("authgate-check-cidr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[network]\n{network}\n\n[[upstreams]]\nname = \"u\"\nurl = \"http://127.0.0.1:9\"\n\n\
         [[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"u\"\npublic = true\n\
         {route_allow}\n"
    );
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["check", "-c"])
        .arg(&path)
        .env("RUST_LOG", "off")
        .output()
        .expect("run authgate check");
    std::fs::remove_file(&path).ok();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_refuses_cidrs_with_host_bits_naming_key_and_line() {
    let cases = [
        (
            "trusted",
            "trusted_proxies = [\"127.0.0.9/8\"]",
            "",
            "trusted.toml:2: network.trusted_proxies[0]: invalid cidr \"127.0.0.9/8\"",
        ),
        (
            "allow",
            "allow = [\"127.0.0.1\", \"10.20.30.40/8\"]",
            "",
            "allow.toml:2: network.allow[1]: invalid cidr \"10.20.30.40/8\"",
        ),
        (
            "route",
            "",
            "allow = [\"10.0.0.0/8\", \"192.0.2.1/24\"]",
            "route.toml:13: routes[0].allow[1]: invalid cidr \"192.0.2.1/24\"",
        ),
    ];
    for (name, network, route_allow, want) in cases {
        let (code, stdout, stderr) = check(name, network, route_allow);
        assert_eq!(code, 1, "{name}: stdout {stdout:?} stderr {stderr:?}");
        assert!(
            stderr.contains(want),
            "{name}: {stderr:?} should contain {want:?}"
        );
        assert!(stderr.contains("host bits are set"), "{name}: {stderr}");
    }
    let (code, stdout, stderr) = check(
        "good",
        "trusted_proxies = [\"127.0.0.0/8\"]\nallow = [\"10.0.0.0/8\", \"127.0.0.1\"]",
        "allow = [\"192.0.2.0/24\"]",
    );
    assert_eq!(code, 0, "stdout {stdout:?} stderr {stderr:?}");
    assert!(stdout.contains(": ok ("), "{stdout}");
}
