//! The README documents every config key the code accepts (issue 6).

#[test]
fn every_config_key_is_in_the_readme() {
    let raw = include_str!("../src/config/raw.rs");
    let readme = include_str!("../README.md");
    let mut missing = Vec::new();
    let mut count = 0;
    for line in raw.lines() {
        let Some(field) = line.trim().strip_prefix("pub ") else {
            continue;
        };
        let Some((name, _)) = field.split_once(':') else {
            continue;
        };
        if name.contains(' ') || name.contains('(') {
            continue; // not a field
        }
        count += 1;
        let documented = [
            format!("`{name}`"),
            format!("[{name}]"),
            format!("[[{name}]]"),
            format!(".{name}]"),
        ]
        .iter()
        .any(|form| readme.contains(form.as_str()));
        if !documented {
            missing.push(name.to_owned());
        }
    }
    assert!(
        count > 40,
        "found only {count} config fields; did raw.rs change shape?"
    );
    assert!(
        missing.is_empty(),
        "config keys missing from README.md: {missing:?}"
    );
}
