//! Instruction-count benchmark of one request through the whole gateway: a raw HTTP/1.1
//! keep-alive client, the real gateway (`server::Handle`, every pipeline step, the access log,
//! the upstream client) and a raw loopback upstream, all in this one process on a
//! current-thread runtime, so that `valgrind --tool=callgrind` counts are deterministic.
//! `benches/callgrind/run.sh` drives it; see there for how per-request numbers are derived.
//!
//! ```text
//! pipeline prepare DIR              RSA-2048 key, DIR/jwks.json and DIR/tokens.txt (natively)
//! pipeline run DIR hit|miss N       warm-up requests, then N measured requests
//! ```
//!
//! `hit` sends one token every time (a token-cache hit); `miss` sends a new token on every
//! request to a gateway whose cache is smaller than the set, so every request verifies an
//! RS256 signature and inserts with eviction. The access log follows `RUST_LOG` (`info`: on,
//! JSON; `warn`: off). Tokens are minted by `prepare`, never inside the measured process.
//! Nothing here is timed: wall-clock numbers on a shared machine are noise.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authgate::server::{ConfigOrigin, Handle};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The binary's allocator (src/main.rs), so that allocation costs count as they do there.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const ISSUER: &str = "https://idp.bench.example/";
const AUDIENCE: &str = "api://orders";
const KID: &str = "bench-rsa-1";
/// Requests before the measured ones: upstream connection, lazy statics, first allocations.
const WARM_UP: usize = 3;
/// Most measured requests a `miss` run can make (distinct tokens minted by `prepare`).
const MAX_REQUESTS: usize = 1000;
/// The miss run's cache: smaller than the token set, so inserts evict (issue #19's setup).
const MISS_CACHE_ENTRIES: usize = 16;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; ignore flags.
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let result = match args.as_slice() {
        ["prepare", dir] => prepare(Path::new(dir)),
        ["run", dir, case, n] => match (case, n.parse::<usize>()) {
            (&("hit" | "miss"), Ok(n)) if n <= MAX_REQUESTS => {
                run(Path::new(dir), *case == "hit", n)
            }
            _ => Err(format!("bad case {case:?} or count {n:?}")),
        },
        [] => {
            // `cargo bench` with no arguments: nothing to measure without valgrind.
            eprintln!("pipeline: see benches/callgrind/run.sh");
            Ok(())
        }
        _ => Err("usage: pipeline prepare DIR | pipeline run DIR hit|miss N".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pipeline: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `der` as PEM text under `label` (LF line endings, 64-column lines).
fn pem(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), config)
}

fn prepare(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| format!("rsa keygen: {e}"))?;
    let pkcs8 = pair.as_der().map_err(|e| format!("pkcs8: {e}"))?;
    let encoding = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
        .map_err(|e| format!("rsa pem: {e}"))?;
    let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    let jwks = json!({ "keys": [{
        "kty": "RSA", "kid": KID, "alg": "RS256", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(&public.n),
        "e": URL_SAFE_NO_PAD.encode(&public.e),
    }]});
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    header.typ = Some("at+jwt".to_owned());
    let mut tokens = String::new();
    // Token 0 is the hit token; the miss run takes the others in order.
    for i in 0..=(WARM_UP + MAX_REQUESTS) {
        let claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": format!("user-{i:05}"),
            "client_id": "bench-client", "scope": "orders:read orders:write",
            "tid": "tenant-7", "iat": now - 60, "exp": now + 86_400,
        });
        let token =
            jsonwebtoken::encode(&header, &claims, &encoding).map_err(|e| format!("sign: {e}"))?;
        tokens.push_str(&token);
        tokens.push('\n');
    }
    std::fs::write(dir.join("tokens.txt"), tokens).map_err(|e| e.to_string())
}

fn config(dir: &Path, upstream: SocketAddr, cache_entries: usize) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
token_cache_entries = {cache_entries}
token_cache_ttl = "5m"

[admin]
listen = "127.0.0.1:0"

[network]
allow = ["127.0.0.0/8"]

[[issuers]]
name = "bench-idp"
issuer = "{ISSUER}"
jwks_file = "{jwks}"
audiences = ["{AUDIENCE}"]
algorithms = ["RS256"]
leeway = "30s"
claim_headers = {{ "X-Auth-Tenant" = "tid" }}

[[upstreams]]
name = "orders"
url = "http://{upstream}"
max_idle_connections = 8

[[routes]]
name = "orders-read"
path_prefix = "/orders"
methods = ["GET"]
upstream = "orders"
scopes = ["orders:read"]
allow = ["127.0.0.1/32"]
"#,
        jwks = dir.join("jwks.json").display(),
    )
}

/// A raw HTTP/1.1 upstream: answers every request head (no bodies here) with a fixed 200.
async fn upstream(listener: tokio::net::TcpListener) {
    const RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
    while let Ok((mut stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 16 * 1024];
            let mut filled = 0;
            loop {
                let Ok(read) = stream.read(&mut buffer[filled..]).await else {
                    return;
                };
                if read == 0 {
                    return;
                }
                filled += read;
                // One head per read in this benchmark: the common case costs one comparison.
                if buffer[..filled].ends_with(b"\r\n\r\n") {
                    if stream.write_all(RESPONSE).await.is_err() {
                        return;
                    }
                    filled = 0;
                }
                while let Some(end) = find(&buffer[..filled], b"\r\n\r\n") {
                    if stream.write_all(RESPONSE).await.is_err() {
                        return;
                    }
                    buffer.copy_within(end + 4..filled, 0);
                    filled -= end + 4;
                }
                if filled == buffer.len() {
                    return;
                }
            }
        });
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One request on the keep-alive connection; the status code of its response.
fn request(stream: &mut TcpStream, buffer: &mut Vec<u8>, token: &str) -> Result<u16, String> {
    let head = format!(
        "GET /orders/12345?expand=items HTTP/1.1\r\nHost: api.bench.example\r\n\
         Authorization: Bearer {token}\r\nAccept: application/json\r\n\
         User-Agent: bench/1\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .map_err(|e| e.to_string())?;
    buffer.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let head = &buffer[..end];
            let status = head
                .get(9..12)
                .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok())
                .ok_or("no status")?;
            let length = content_length(head).ok_or("no content-length")?;
            if buffer.len() >= end + 4 + length {
                return Ok(status);
            }
        }
        let read = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("connection closed".into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn content_length(head: &[u8]) -> Option<usize> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = line.split_at(colon);
        if !name.eq_ignore_ascii_case(b"content-length") {
            return None;
        }
        std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok()
    })
}

fn client(gateway: SocketAddr, tokens: &[&str], hit: bool, n: usize) -> Result<(), String> {
    let mut stream = TcpStream::connect(gateway).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut buffer = Vec::with_capacity(8192);
    for i in 0..WARM_UP + n {
        let token = if hit { tokens[0] } else { tokens[1 + i] };
        let status = request(&mut stream, &mut buffer, token)?;
        if status != 200 {
            return Err(format!("request {i}: status {status}"));
        }
    }
    Ok(())
}

fn run(dir: &Path, hit: bool, n: usize) -> Result<(), String> {
    authgate::logging::init(true);
    let tokens = std::fs::read_to_string(dir.join("tokens.txt")).map_err(|e| e.to_string())?;
    let tokens: Vec<&str> = tokens.lines().collect();
    if tokens.len() < 1 + WARM_UP + MAX_REQUESTS {
        return Err("tokens.txt is short: run prepare again".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let dir: PathBuf = dir.canonicalize().map_err(|e| e.to_string())?;
    let (gateway, handle) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let upstream_addr = listener.local_addr().map_err(|e| e.to_string())?;
        tokio::spawn(upstream(listener));
        let cache = if hit { 1000 } else { MISS_CACHE_ENTRIES };
        let handle = Handle::start(ConfigOrigin::Text {
            name: "bench.toml".into(),
            text: config(&dir, upstream_addr, cache),
        })
        .await
        .map_err(|e| format!("gateway: {e}"))?;
        for _ in 0..200 {
            if handle
                .shared
                .load()
                .issuers
                .iter()
                .all(|i| i.store.keys().is_some())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let gateway = handle.addrs.http.ok_or("no http listener")?;
        Ok::<_, String>((gateway, handle))
    })?;
    // The client runs on its own thread (blocking I/O) while the runtime serves the gateway
    // and the upstream on this one; a channel (not polling, which would count wall time)
    // says when it is done.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            let result = client(gateway, &tokens, hit, n);
            let _ = done_tx.send(result);
        });
        runtime
            .block_on(done_rx)
            .unwrap_or_else(|_| Err("client thread ended without an answer".into()))
    });
    eprintln!(
        "pipeline: {} {n} requests: {result:?}",
        if hit { "hit" } else { "miss" }
    );
    drop(handle);
    result
}
