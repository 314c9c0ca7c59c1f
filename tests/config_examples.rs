//! Every example in config/ passes `authgate check` with the environment its header comment
//! names (issue 16), `demo.toml` included: it is a valid config of its own that the demo
//! fills in, not a template. Values follow deploy/validate.sh: a random secret for names
//! holding SECRET, an https URL for ISSUER/URI/URL, an id otherwise.

use std::process::Command;

#[test]
fn every_example_config_passes_check_with_the_environment_its_header_names() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).unwrap();
        let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_authgate"));
        command
            .args(["--log-format", "json", "check", "-c"])
            .arg(&path);
        for piece in text.split("${").skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name.is_empty() {
                continue; // ${file:...}
            }
            assert!(
                header.iter().any(|line| line.contains(&name)),
                "{}: uses ${{{name}}} but its header comment does not name it",
                path.display()
            );
            let value = if name.contains("SECRET") {
                format!("{:x}{:x}", rand_u128(), rand_u128())
            } else if ["ISSUER", "URI", "URL"].iter().any(|k| name.contains(k)) {
                format!("https://idp.example.com/{name}/")
            } else {
                format!("example-{name}")
            };
            command.env(&name, value);
        }
        let output = command.output().expect("run authgate check");
        assert!(
            output.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(
        checked.contains(&"demo.toml".to_owned()) && checked.len() >= 8,
        "{checked:?}"
    );
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    u128::from(hasher.finish()) << 64 | u128::from(hasher.finish())
}
