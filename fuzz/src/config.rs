//! Config loading: `config::parse` then `config::compile` on arbitrary text.
//!
//! Input: the TOML text (inputs that are not UTF-8 are skipped: `config::read` refuses them
//! before `parse` runs).
//!
//! Relative paths in a config resolve against the working directory, which is the fuzz crate
//! (`cargo fuzz` and `replay.sh` both run there): seeds name `corpus/jwks/...` as `jwks_file`.
//!
//! Invariant: never panics; errors are fine. Errors must render (`Display`, `{:#}`-style
//! source chain) without panicking, and the line a `ConfigError` names (syntax or invalid
//! value) lies within the text: 1 to the number of `\n` plus one.
//!
//! `compile` opens the files a config names (TLS certificates, CA bundles, `jwks_file`). That is
//! intended, but a fuzzer that finds `/dev/zero` or `/dev/stdin` would hang or exhaust memory
//! reading it, which says nothing about the parser: inputs whose strings (after TOML unescaping)
//! could name something under `/dev`, `/proc` or `/sys`, or that use an environment variable
//! that is set but not one of [`ENV`] (its value could be such a path), are skipped.

use std::sync::Once;

use authgate::config::{compile, parse, CompileContext, ConfigError, Source};
use authgate::metrics::Metrics;

/// Variables the example configs use, with harmless values.
const ENV: &[(&str, &str)] = &[
    (
        "ORDERS_HMAC_SECRET",
        "fuzzing-secret-0123456789abcdef-0123456789",
    ),
    ("AUTHGATE_FUZZ_LISTEN", "127.0.0.1:0"),
    ("COGNITO_POOL_ID", "eu-west-1_AbCdEf123"),
    ("COGNITO_APP_CLIENT_ID", "4example5client6id"),
    ("ENTRA_TENANT_ID", "00000000-0000-0000-0000-000000000001"),
    (
        "ENTRA_API_CLIENT_ID",
        "00000000-0000-0000-0000-000000000002",
    ),
];

pub fn fuzz_one(data: &[u8]) {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        for (name, value) in ENV {
            // The fuzzer is single-threaded and this runs before any config is compiled.
            std::env::set_var(name, value);
        }
    });
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if !safe_paths(text) {
        return;
    }
    let source = Source {
        path: "fuzz.toml".to_owned(),
        text: text.to_owned(),
    };
    let raw = match parse(&source) {
        Ok(raw) => raw,
        Err(error) => {
            check_error(&error, text);
            return;
        }
    };
    let context = CompileContext {
        source: &source,
        metrics: Metrics::new(),
        previous: None,
    };
    match compile(&raw, context) {
        Ok(snapshot) => drop(snapshot),
        Err(error) => check_error(&error, text),
    }
}

fn check_error(error: &ConfigError, text: &str) {
    render(error);
    let line = match error {
        ConfigError::Syntax { line, .. } | ConfigError::Invalid { line, .. } => *line,
        ConfigError::Read { .. } => None,
    };
    if let Some(line) = line {
        let lines = text.split('\n').count();
        assert!(
            (1..=lines).contains(&line),
            "{error}: line {line} outside the text's {lines} lines"
        );
    }
}

fn render(error: &dyn std::error::Error) {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    assert!(!text.is_empty());
}

/// Whether every string in the document is harmless as a path, and every `${VAR}` is one of
/// [`ENV`] or unset (then it fails, or takes its default, which is checked with the string).
fn safe_paths(text: &str) -> bool {
    let Ok(document) = text.parse::<toml::Table>() else {
        // Not TOML: `parse` fails before anything is opened.
        return true;
    };
    let mut strings = Vec::new();
    let document = toml::Value::Table(document);
    collect_strings(&document, &mut strings);
    strings.iter().all(|s| {
        let dangerous = ["dev/", "proc/", "sys/"]
            .iter()
            .any(|dir| s.starts_with(dir) || s.contains(&format!("/{dir}")));
        !dangerous && env_refs_known(s)
    })
}

fn env_refs_known(s: &str) -> bool {
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return true;
        };
        let expr = &after[..end];
        let name = expr.split_once(":-").map_or(expr, |(name, _)| name);
        let known = ENV.iter().any(|(known, _)| *known == name);
        if !known && std::env::var_os(name).is_some() {
            return false;
        }
        rest = &after[end + 1..];
    }
    true
}

fn collect_strings<'a>(value: &'a toml::Value, out: &mut Vec<&'a str>) {
    match value {
        toml::Value::String(s) => out.push(s),
        toml::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        toml::Value::Table(table) => table.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}
