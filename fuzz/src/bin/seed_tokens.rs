//! Prints the tokens the `jwt` target signs itself, one per line, for seeding
//! `corpus/jwt/` (see README.md). They are deterministic, so committed seeds stay valid.

fn main() {
    for token in authgate_fuzz::jwt::signed_tokens() {
        println!("{token}");
    }
}
