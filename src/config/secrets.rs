//! HMAC secrets that protect nothing (issue 12 item 9): whoever knows an issuer's
//! `hmac_secret` mints any token for it, so a value that was published as a placeholder, or
//! that is guessable, is refused like any other invalid config.
//!
//! Each rule must be free of false positives on a real secret, so each is narrow:
//! 1. **Placeholder words.** Split into lowercase words at every character that is not a
//!    letter or digit, the value holds the word `placeholder`, or `change` / `replace`
//!    followed by `me` or `this` (also written as one word: `changeme`, `CHANGE_ME`). Whole
//!    words, so `exchange messages` is not one; nobody keeps such words in a real secret, and
//!    a random one holds them with odds below 10^-12.
//! 2. **Too little entropy even at best.** `length × log2(distinct characters) < 64`: even if
//!    every character had been drawn uniformly from exactly the characters that occur, the
//!    value would carry fewer than 64 bits (`aaaa…`, `abab…`, `0101…` of 32 characters). A
//!    generated secret of at least 32 characters passes unless its alphabet has fewer than
//!    four symbols.
//!
//! Not attempted: dictionary words, keyboard walks or published example values; they need a
//! judgement this check cannot make without refusing someone's real secret. The length rule
//! (at least 32 bytes) lives with the issuer compiler.

/// Why `secret` is refused, or `None`. The reason never quotes the secret.
pub(super) fn weak_hmac_secret(secret: &str) -> Option<&'static str> {
    let words: Vec<String> = secret
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let verb = |word: &str| matches!(word, "change" | "replace");
    let object = |word: &str| matches!(word, "me" | "this");
    let placeholder = words.iter().any(|word| {
        word == "placeholder"
            || ["change", "replace"]
                .iter()
                .any(|v| word.strip_prefix(v).is_some_and(object))
    }) || words
        .windows(2)
        .any(|pair| verb(&pair[0]) && object(&pair[1]));
    if placeholder {
        return Some("hmac_secret looks like a placeholder; generate a random one (e.g. openssl rand -base64 48)");
    }
    let mut seen = [false; 256];
    for byte in secret.bytes() {
        seen[usize::from(byte)] = true;
    }
    let distinct = seen.iter().filter(|seen| **seen).count();
    let bits_at_best = (secret.len() as f64) * (distinct.max(1) as f64).log2();
    if bits_at_best < 64.0 {
        return Some("hmac_secret has too little entropy (too few distinct characters); generate a random one (e.g. openssl rand -base64 48)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::weak_hmac_secret;

    #[test]
    fn placeholders_and_low_entropy_are_refused() {
        let refused = [
            // The value deploy/kubernetes/secret.yaml used to ship.
            "change-me-to-a-random-secret-of-at-least-32-bytes",
            "CHANGE_ME_CHANGE_ME_CHANGE_ME_CHANGE_ME",
            "please replace me with a real secret value!",
            "placeholder-placeholder-placeholder-xyz",
            "change this to something random, 32+ bytes",
            "myAppSecret-changeMe-0123456789abcdef",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "abababababababababababababababab",
            "01010101010101010101010101010101",
            "abcabcabcabcabcabcabcabcabcabcabcabcabca",
        ];
        for secret in refused {
            let reason = weak_hmac_secret(secret).unwrap_or_else(|| panic!("{secret} passed"));
            assert!(!reason.contains(secret), "{reason}");
        }
    }

    #[test]
    fn real_secrets_pass() {
        let accepted = [
            "0123456789abcdef0123456789abcdef",
            "tls-tests-hmac-secret-0123456789abcdef",
            "an-hmac-secret-that-is-at-least-32-bytes-long",
            "a-shared-secret-of-at-least-32-bytes!",
            "correct horse battery staple, then some more words",
            "we exchange messages with the orders team daily",
            "the placeholders are gone: 8f3a9c1d2e7b6a5f",
            // openssl rand -base64 48, openssl rand -hex 16, and 64 binary digits.
            "q1oX0mJ6Vd3+T3Jb1nS9w8z2QkLr7pYfHh0cGx4eUuN5aWb2sEo/KlMdRt6yZiPv",
            "9f86d081884c7d659a2feaa0c55ad015",
            "0110100101101001011010010110100101101001011010010110100101101001",
        ];
        for secret in accepted {
            assert_eq!(weak_hmac_secret(secret), None, "{secret}");
        }
    }

    /// Random secrets of the minimum length from common alphabets always pass.
    #[test]
    fn random_minimum_length_secrets_pass() {
        use rand::Rng;
        let alphabets: [&[u8]; 3] = [
            b"0123456789abcdef",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            b"0123456789",
        ];
        let mut rng = rand::rng();
        for alphabet in alphabets {
            for _ in 0..2000 {
                let secret: String = (0..32)
                    .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                    .collect();
                assert_eq!(weak_hmac_secret(&secret), None, "{secret}");
            }
        }
    }
}
