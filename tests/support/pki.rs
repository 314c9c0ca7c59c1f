//! Private harness of `tests/tls.rs` and `tests/network.rs` (included with
//! `#[path = "support/pki.rs"] mod pki;`, not through `support/mod.rs`).
//!
//! - Test PKI generated with rcgen at test time: [`Ca`] issues server and client leaves.
//! - [`Scratch`]: a unique directory under the system temp dir, removed on drop, for the PEM
//!   files and config files the gateway reads.
//! - [`Gateway`]: a real `authgate::server::Handle`, shut down on drop, ready-checked through
//!   `/readyz` (bounded).
//! - [`Echo`]: a tiny HTTP/1.1 upstream that answers with the request head it saw as JSON.
//! - Clients: plaintext HTTP/1.1 ([`http_send`]) and TLS ([`TlsClient`]) with ALPN, client
//!   certificates and access to the server's certificate.
//!
//! Every wait is bounded; everything binds loopback port 0.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authgate::server::{ConfigOrigin, Control, Handle, StartError};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

/// The bound on one client exchange.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The bound on eventual states (readiness, reload applied, metrics updated).
pub const EVENTUALLY: Duration = Duration::from_secs(5);

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ---------------------------------------------------------------------------------------------
// PKI

/// A certificate authority with its key.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its private key.
#[derive(Clone)]
pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
    key_der: Vec<u8>,
}

impl Leaf {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// Lowercase hex of the SHA-256 of the DER, computed here independently of the gateway.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256())
    }

    /// Lowercase hex of the SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` reports
    /// it from the PEM: an independent parser and hash, so a gateway that hashed the wrong
    /// bytes cannot agree with it by sharing the test's mistake. Panics without `openssl`
    /// (CI installs it).
    pub fn openssl_sha256_hex(&self) -> String {
        use std::io::Write as _;
        let mut child = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run openssl (needed for the independent certificate fingerprint)");
        child
            .stdin
            .take()
            .expect("openssl stdin")
            .write_all(self.cert_pem.as_bytes())
            .expect("write the certificate to openssl");
        let output = child.wait_with_output().expect("openssl output");
        assert!(output.status.success(), "openssl x509 failed: {output:?}");
        let text = String::from_utf8(output.stdout).expect("openssl prints ascii");
        let (_, colon_hex) = text.trim().split_once('=').expect("Fingerprint=AB:CD:...");
        colon_hex.replace(':', "").to_ascii_lowercase()
    }

    pub fn sha256(&self) -> Vec<u8> {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.der.as_ref())
            .as_ref()
            .to_vec()
    }
}

fn serial() -> SerialNumber {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // Positive, unique within the process, different between runs.
    let value = (nanos & 0x0fff_ffff_ffff_0000) | NEXT.fetch_add(1, Ordering::Relaxed);
    SerialNumber::from(value)
}

impl Ca {
    pub fn new(common_name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "authgate tests");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(serial());
        let key = KeyPair::generate().expect("ca key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("self-signed ca"),
        }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost`, 127.0.0.1 and ::1 with subject `CN=<cn>`.
    pub fn server(&self, common_name: &str) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params
            .subject_alt_names
            .push(SanType::IpAddress("::1".parse().unwrap()));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate with subject `CN=<cn>,O=<org>` (RFC 4514 order: the O RDN is
    /// encoded first, the CN last).
    pub fn client(&self, common_name: &str, organization: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    /// A PEM CRL signed by this CA that revokes `revoked`.
    pub fn crl_pem(&self, revoked: &[&Leaf]) -> String {
        let revoked_certs = revoked
            .iter()
            .map(|leaf| {
                let (_, cert) =
                    x509_parser::parse_x509_certificate(leaf.der.as_ref()).expect("leaf");
                rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from_slice(cert.raw_serial()),
                    revocation_time: rcgen::date_time_ymd(2025, 1, 1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                }
            })
            .collect();
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2025, 1, 1),
            next_update: rcgen::date_time_ymd(2100, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .expect("signed crl")
            .pem()
            .expect("crl pem")
    }

    fn sign(&self, mut params: CertificateParams) -> Leaf {
        params.serial_number = Some(serial());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed leaf");
        Leaf {
            der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}

/// A self-signed client certificate (no CA vouches for it).
pub fn self_signed_client(common_name: &str) -> Leaf {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.serial_number = Some(serial());
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.self_signed(&key).expect("self-signed leaf");
    Leaf {
        der: cert.der().clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    }
}

// ---------------------------------------------------------------------------------------------
// Files

/// A unique scratch directory under the system temp dir, removed on drop.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "authgate-{label}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `contents` to `name` (replacing it atomically) and returns the path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        let temporary = self.path(&format!(".{name}.tmp"));
        std::fs::write(&temporary, contents).expect("write scratch file");
        std::fs::rename(&temporary, &path).expect("rename scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A path as a TOML basic string (quoted, backslashes escaped).
pub fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

// ---------------------------------------------------------------------------------------------
// Gateway

/// A running gateway; asks for a shutdown on drop.
pub struct Gateway {
    pub handle: Handle,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.handle.control().try_send(Control::Shutdown);
    }
}

impl Gateway {
    /// Starts from TOML text and waits (bounded) for `/readyz`.
    pub async fn from_toml(text: &str) -> Gateway {
        Gateway::start(ConfigOrigin::Text {
            name: "test.toml".into(),
            text: text.into(),
        })
        .await
        .expect("gateway starts")
    }

    /// Starts from `origin` and waits (bounded) for `/readyz`.
    pub async fn start(origin: ConfigOrigin) -> Result<Gateway, StartError> {
        let handle = Handle::start(origin).await?;
        let gateway = Gateway { handle };
        let admin = gateway.admin();
        let ready = eventually(EVENTUALLY, || async move {
            matches!(
                tokio::time::timeout(Duration::from_secs(1), try_http_send(admin, get("/readyz")))
                    .await,
                Ok(Ok(reply)) if reply.status == StatusCode::OK
            )
        })
        .await;
        assert!(ready, "gateway not ready within {EVENTUALLY:?}");
        Ok(gateway)
    }

    pub fn http(&self) -> SocketAddr {
        self.handle.addrs.http.expect("plaintext listener")
    }

    pub fn https(&self) -> SocketAddr {
        self.handle.addrs.https.expect("tls listener")
    }

    pub fn admin(&self) -> SocketAddr {
        self.handle.addrs.admin
    }

    pub async fn metrics(&self) -> String {
        let reply = http_send(self.admin(), get("/metrics")).await;
        assert_eq!(reply.status, StatusCode::OK, "/metrics");
        reply.text()
    }

    /// The sum of every sample of `family` whose line contains `filter` (e.g. a label).
    pub async fn metric_sum(&self, family: &str, filter: &str) -> f64 {
        metric_sum(&self.metrics().await, family, filter)
    }
}

/// The sum of every sample of `family` whose line contains `filter`.
pub fn metric_sum(text: &str, family: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| line.contains(filter))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `check` every 20 ms until it returns true; false if `within` passes first.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Echo upstream

/// An HTTP/1.1 upstream answering 200 with `{"method", "path", "headers": [[name, value]..]}`.
pub struct Echo {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Echo {
    pub async fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = service_fn(|request: Request<Incoming>| async move {
                        let headers: Vec<(String, String)> = request
                            .headers()
                            .iter()
                            .map(|(n, v)| {
                                (
                                    n.as_str().to_owned(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                            .collect();
                        let json = serde_json::json!({
                            "method": request.method().as_str(),
                            "path": request.uri().to_string(),
                            "headers": headers,
                        });
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(json.to_string())))
                                .unwrap(),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Echo { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

// ---------------------------------------------------------------------------------------------
// Clients

/// A collected response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// Every value of header `name` the echo upstream saw (case-insensitive).
    #[track_caller]
    pub fn upstream_headers(&self, name: &str) -> Vec<String> {
        assert_eq!(self.status, StatusCode::OK, "echo reply: {}", self.text());
        let json = self.json();
        json["headers"]
            .as_array()
            .unwrap_or_else(|| panic!("not an echo reply: {json}"))
            .iter()
            .filter(|pair| {
                pair[0]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .map(|pair| pair[1].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The single value of header `name` the upstream saw, if any.
    #[track_caller]
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        let values = self.upstream_headers(name);
        assert!(
            values.len() <= 1,
            "several {name} headers upstream: {values:?}"
        );
        values.into_iter().next()
    }

    /// Asserts a gateway error: status, JSON `error`, `Content-Type: application/json`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "status; body: {}",
            self.text()
        );
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "content-type"
        );
        assert_eq!(self.json()["error"], code, "error code in {}", self.text());
    }
}

pub fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path).body(Empty::new()).expect("request")
}

/// `GET path` with extra headers.
pub fn get_with(path: &str, headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut builder = Request::get(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Empty::new()).expect("request")
}

async fn collect(response: Response<Incoming>) -> Result<Reply, BoxError> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

async fn try_http_send(
    addr: SocketAddr,
    mut request: Request<Empty<Bytes>>,
) -> Result<Reply, BoxError> {
    if !request.headers().contains_key(http::header::HOST) {
        request
            .headers_mut()
            .insert(http::header::HOST, addr.to_string().parse()?);
    }
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    collect(sender.send_request(request).await?).await
}

/// Plaintext HTTP/1.1 on a fresh connection; bounded by [`TIMEOUT`], panics on failure.
pub async fn http_send(addr: SocketAddr, request: Request<Empty<Bytes>>) -> Reply {
    tokio::time::timeout(TIMEOUT, try_http_send(addr, request))
        .await
        .expect("response within the timeout")
        .expect("request succeeds")
}

/// A TLS client configuration: trusted roots, ALPN offer and an optional client certificate.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
}

/// An open TLS connection with its negotiated facts.
pub struct TlsConn {
    pub alpn: Option<Vec<u8>>,
    pub server_cert: Option<CertificateDer<'static>>,
    stream: TlsStream<TcpStream>,
}

/// A keep-alive HTTP/1.1 sender over TLS.
pub struct H1Conn {
    pub server_cert: Option<CertificateDer<'static>>,
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    authority: String,
}

impl H1Conn {
    pub async fn send(&mut self, request: Request<Empty<Bytes>>) -> Result<Reply, BoxError> {
        let mut request = request;
        if !request.headers().contains_key(http::header::HOST) {
            request
                .headers_mut()
                .insert(http::header::HOST, self.authority.parse()?);
        }
        let exchange = async {
            self.sender.ready().await?;
            collect(self.sender.send_request(request).await?).await
        };
        tokio::time::timeout(TIMEOUT, exchange).await?
    }
}

impl TlsClient {
    /// Trusts `roots`, offers `alpn`, presents `client` when given.
    pub fn new(roots: &[CertificateDer<'static>], alpn: &[&[u8]], client: Option<&Leaf>) -> Self {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store.add(root.clone()).expect("root");
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(store);
        let mut config = match client {
            Some(leaf) => builder
                .with_client_auth_cert(vec![leaf.der.clone()], leaf.key())
                .expect("client cert"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsClient {
            config: Arc::new(config),
        }
    }

    /// Connects and completes the client side of the handshake (bounded). With TLS 1.3 a
    /// client certificate the server refuses is only reported on the first read, so use
    /// [`TlsClient::request`] to see a refusal.
    pub async fn connect(&self, addr: SocketAddr) -> Result<TlsConn, BoxError> {
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.config));
        let exchange = async {
            let tcp = TcpStream::connect(addr).await?;
            let name = ServerName::try_from("localhost")?;
            let stream = connector.connect(name, tcp).await?;
            let (_, session) = stream.get_ref();
            Ok::<_, BoxError>(TlsConn {
                alpn: session.alpn_protocol().map(<[u8]>::to_vec),
                server_cert: session
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|c| c.clone().into_owned()),
                stream,
            })
        };
        tokio::time::timeout(TIMEOUT, exchange).await?
    }

    /// Opens a keep-alive HTTP/1.1 connection (whatever ALPN said).
    pub async fn open_h1(&self, addr: SocketAddr) -> Result<H1Conn, BoxError> {
        let conn = self.connect(addr).await?;
        let server_cert = conn.server_cert.clone();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(conn.stream)).await?;
        tokio::spawn(connection);
        Ok(H1Conn {
            server_cert,
            sender,
            authority: format!("localhost:{}", addr.port()),
        })
    }

    /// One request on a fresh connection, over h2 when ALPN chose it, else HTTP/1.1.
    pub async fn request(
        &self,
        addr: SocketAddr,
        request: Request<Empty<Bytes>>,
    ) -> Result<(Reply, Negotiated), BoxError> {
        let conn = self.connect(addr).await?;
        let facts = Negotiated {
            alpn: conn.alpn.clone(),
            server_cert: conn.server_cert.clone(),
        };
        let authority = format!("localhost:{}", addr.port());
        let mut request = request;
        let exchange = async {
            if conn.alpn.as_deref() == Some(b"h2") {
                let uri = format!("https://{authority}{}", request.uri());
                *request.uri_mut() = uri.parse()?;
                *request.version_mut() = Version::HTTP_2;
                let (mut sender, connection) = hyper::client::conn::http2::handshake(
                    TokioExecutor::new(),
                    TokioIo::new(conn.stream),
                )
                .await?;
                tokio::spawn(connection);
                collect(sender.send_request(request).await?).await
            } else {
                if !request.headers().contains_key(http::header::HOST) {
                    request
                        .headers_mut()
                        .insert(http::header::HOST, authority.parse()?);
                }
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(conn.stream)).await?;
                tokio::spawn(connection);
                collect(sender.send_request(request).await?).await
            }
        };
        let reply = tokio::time::timeout(TIMEOUT, exchange).await??;
        Ok((reply, facts))
    }

    /// [`TlsClient::request`], panicking on failure.
    pub async fn send(&self, addr: SocketAddr, request: Request<Empty<Bytes>>) -> Reply {
        self.request(addr, request)
            .await
            .unwrap_or_else(|e| panic!("tls request fails: {e}"))
            .0
    }
}

/// The negotiated facts of a connection whose stream was handed to the HTTP client.
#[derive(Debug, Clone)]
pub struct Negotiated {
    pub alpn: Option<Vec<u8>>,
    pub server_cert: Option<CertificateDer<'static>>,
}
