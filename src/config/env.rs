//! `${VAR}` and `${VAR:-default}` interpolation of string values (SPEC §2).

/// Replaces every `${VAR}` / `${VAR:-default}` in `input` using `lookup`. `$$` stays `$$`;
/// a `$` not followed by `{` is kept. An unset variable without a default is an error naming
/// the variable (never its value).
pub fn interpolate(input: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
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

#[cfg(test)]
mod tests {
    use super::interpolate;

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
            let got = interpolate(input, env);
            let want = want.map(str::to_owned).map_err(str::to_owned);
            assert_eq!(got, want, "input {input:?}");
        }
    }
}
