//! `${VAR}`, `${VAR:-default}` and `${file:PATH}` interpolation of string values (SPEC §2).
//!
//! `${file:PATH}` is the content of a file without its trailing newline (Kubernetes Secret
//! mounts), read at every load, so a SIGHUP picks up a rotated secret. A relative PATH
//! resolves against the config file's directory, like every other path in the config. Errors
//! name the variable or the file, never a value.

use std::path::{Path, PathBuf};

/// Replaces every `${VAR}` / `${VAR:-default}` in `input` using `lookup`, and every
/// `${file:PATH}` with that file's content (relative to `base`). `$$` stays `$$`; a `$` not
/// followed by `{` is kept. An unset variable without a default is an error naming the
/// variable (never its value).
pub fn interpolate(
    input: &str,
    base: &Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    if !input.contains("${") {
        return Ok(input.to_owned());
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated \"${\" in value".to_owned())?;
        let expr = &after[..end];
        if let Some(file) = expr.strip_prefix("file:") {
            out.push_str(&read_secret_file(base, file)?);
            rest = &after[end + 1..];
            continue;
        }
        let (name, default) = match expr.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (expr, None),
        };
        if name.is_empty()
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || name.as_bytes()[0].is_ascii_digit()
        {
            return Err(format!("invalid environment variable name \"{name}\""));
        }
        match (lookup(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `path` resolved against `base` when relative.
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_relative() {
        base.join(path)
    } else {
        path.to_path_buf()
    }
}

/// The content of `${file:PATH}`: UTF-8, one trailing newline (LF or CRLF) removed.
fn read_secret_file(base: &Path, file: &str) -> Result<String, String> {
    if file.is_empty() {
        return Err("\"${file:}\" names no file".to_owned());
    }
    let path = resolve(base, file);
    let bytes = std::fs::read(&path).map_err(|error| {
        format!(
            "cannot read {} for ${{file:{file}}}: {error}",
            path.display()
        )
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{} for ${{file:{file}}} is not UTF-8", path.display()))?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::interpolate;
    use std::path::Path;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("idp.example.com".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolation_table() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain", Ok("plain")),
            ("https://${HOST}/", Ok("https://idp.example.com/")),
            ("${MISSING:-fallback}", Ok("fallback")),
            ("${HOST:-fallback}", Ok("idp.example.com")),
            ("${EMPTY}", Ok("")),
            ("${MISSING:-}", Ok("")),
            ("$HOST", Ok("$HOST")),
            ("a${HOST}b${HOST}c", Ok("aidp.example.combidp.example.comc")),
            ("${MISSING}", Err("environment variable MISSING is not set")),
            ("${HOST", Err("unterminated \"${\" in value")),
            ("${}", Err("invalid environment variable name \"\"")),
            ("${A-B}", Err("invalid environment variable name \"A-B\"")),
        ];
        for (input, want) in cases {
            let got = interpolate(input, Path::new(""), env);
            let want = want.map(str::to_owned).map_err(str::to_owned);
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn file_values_are_read_relative_to_the_config_directory() {
        let dir = std::env::temp_dir().join(format!("authgate-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret"), "s3cr3t-value\n").unwrap();
        std::fs::write(dir.join("crlf"), "line\r\n").unwrap();
        std::fs::write(dir.join("two"), "a\n\n").unwrap();
        let absolute = dir.join("secret").display().to_string();
        let cases: Vec<(String, Result<&str, &str>)> = vec![
            ("${file:secret}".into(), Ok("s3cr3t-value")),
            (format!("x-${{file:{absolute}}}-y"), Ok("x-s3cr3t-value-y")),
            ("${file:crlf}".into(), Ok("line")),
            ("${file:two}".into(), Ok("a\n")),
            ("${file:missing}".into(), Err("cannot read")),
            ("${file:}".into(), Err("names no file")),
        ];
        for (input, want) in cases {
            match (interpolate(&input, &dir, env), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
                (Err(got), Err(want)) => {
                    assert!(got.contains(want), "{input}: {got}");
                    assert!(!got.contains("s3cr3t"), "a secret leaked: {got}");
                }
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
