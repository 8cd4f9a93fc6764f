//! Loopback servers and throwaway certificates for the client's, the watcher's and the TLS tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use crate::kube::config::{AuthSource, ClusterConfig};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub enum Reply {
    /// Write these bytes (a whole HTTP response) and close.
    Raw(Vec<u8>),
    /// Wait, then write the bytes (or nothing if the server is stopped first) and close.
    After(Duration, Vec<u8>),
    /// Write the bytes, then keep the connection open and silent for up to this long.
    Hold(Vec<u8>, Duration),
}

pub type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

/// A server thread on 127.0.0.1 answering each connection's first request with the handler.
pub struct TestServer {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The longest any test server lives, whatever the test does.
const SERVER_LIFETIME: Duration = Duration::from_secs(120);

impl TestServer {
    pub fn http(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> TestServer {
        TestServer::start(None, Arc::new(handler))
    }

    pub fn tls(
        config: Arc<rustls::ServerConfig>,
        handler: impl Fn(&Req) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        TestServer::start(Some(config), Arc::new(handler))
    }

    fn start(tls: Option<Arc<rustls::ServerConfig>>, handler: Handler) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || accept_loop(listener, tls, handler, stop, seen))
        };
        TestServer {
            url: format!("{scheme}://127.0.0.1:{port}"),
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<Req> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Handler,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Req>>>,
) {
    let born = Instant::now();
    let mut conns = Vec::new();
    while !stop.load(Ordering::SeqCst) && born.elapsed() < SERVER_LIFETIME {
        match listener.accept() {
            Ok((sock, _)) => {
                let (tls, handler, stop, seen) =
                    (tls.clone(), handler.clone(), stop.clone(), seen.clone());
                conns.push(std::thread::spawn(move || {
                    let _ = serve(sock, tls, handler, stop, seen);
                }));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    stop.store(true, Ordering::SeqCst);
    for c in conns {
        let _ = c.join();
    }
}

fn serve(
    sock: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Handler,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Req>>>,
) -> std::io::Result<()> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    sock.set_write_timeout(Some(Duration::from_secs(10)))?;
    match tls {
        None => exchange(sock, &handler, &stop, &seen),
        Some(cfg) => {
            let conn = rustls::ServerConnection::new(cfg).map_err(std::io::Error::other)?;
            exchange(rustls::StreamOwned::new(conn, sock), &handler, &stop, &seen)
        }
    }
}

fn exchange(
    mut s: impl Read + Write,
    handler: &Handler,
    stop: &AtomicBool,
    seen: &Mutex<Vec<Req>>,
) -> std::io::Result<()> {
    let req = read_request(&mut s)?;
    seen.lock().unwrap().push(req.clone());
    match handler(&req) {
        Reply::Raw(bytes) => s.write_all(&bytes)?,
        Reply::After(d, bytes) => {
            if wait(d, stop) {
                s.write_all(&bytes)?;
            }
        }
        Reply::Hold(bytes, d) => {
            s.write_all(&bytes)?;
            s.flush()?;
            wait(d, stop);
        }
    }
    s.flush()
}

/// Sleep up to `d`, in small steps; false if the server was stopped first.
fn wait(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn read_request(s: &mut impl Read) -> std::io::Result<Req> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 64 * 1024 || s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    s.read_exact(&mut body)?;
    Ok(Req {
        method,
        target,
        headers,
        body,
    })
}

/// A fixture response from tests/fixtures/apiserver, told to close the connection after it.
pub fn fixture(name: &str) -> Vec<u8> {
    let raw = std::fs::read(format!(
        "{}/tests/fixtures/apiserver/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let eol = raw.windows(2).position(|w| w == b"\r\n").unwrap();
    let mut out = raw[..eol + 2].to_vec();
    out.extend_from_slice(b"Connection: close\r\n");
    out.extend_from_slice(&raw[eol + 2..]);
    out
}

/// A made-up response with `Connection: close`.
pub fn response(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

pub fn config(url: &str) -> ClusterConfig {
    ClusterConfig {
        server: url.to_string(),
        auth: AuthSource::Token("test-token".into()),
        namespace: Some("fixtures".into()),
        ..Default::default()
    }
}

/// A throwaway CA that signs server and client certificates.
pub struct Pki {
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Certificate PEM for `key` with these SANs (IPs become IP SANs).
    pub fn issue(&self, sans: &[&str], key: &KeyPair) -> String {
        let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "paperlb-test");
        params.signed_by(key, &self.issuer).unwrap().pem()
    }

    /// A server config for these SANs; with `client_ca`, client certificates from it are required.
    pub fn server_config(
        &self,
        sans: &[&str],
        client_ca: Option<&Pki>,
    ) -> Arc<rustls::ServerConfig> {
        use rustls_pki_types::pem::PemObject;
        let key = KeyPair::generate().unwrap();
        let cert_pem = self.issue(sans, &key);
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca.ca_pem.as_bytes()) {
                    roots.add(c.unwrap()).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        Arc::new(builder.with_single_cert(certs, key).unwrap())
    }
}

// Throwaway test keys (openssl genrsa 2048 / ecparam prime256v1), each in two encodings, so that
// PKCS#1 and SEC1 keys are exercised too: ring cannot generate RSA keys, rcgen writes PKCS#8 only.
pub const RSA1: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEowIBAAKCAQEAn7ScbyqdPURXshwPHcOX3rybJNLK57hSlj6bQ7+SoEWjQVga\n\
FxfJdnXkoMLCg8bRhnIy0X2Cgtszyf5oRfsLDSOjzu9HhJZ6FQjcUY/PZc6HSXD8\n\
rK0fDVZXb+9bnNdLr8uwaDoviE39Dngdlq25Q92Z+DcfG9NhiZZMtAZJPOtlsSuZ\n\
055I82INslXCrD6tPiLrnkakZKn4ocZWJ6mbb5Cal7PCdwt3N8UWmRIUD9Cn8HYp\n\
Xg6/7Czs4jXsKWUyYTTjtz60xOHPcciYcmzw0Qelzrl3KbIMCg9Gq8rVIx27sgtU\n\
/xgc3daiyoe9vz7OER/v2CKXDXvyrDe87MUZHQIDAQABAoIBADdokKuq88HJX8me\n\
HYp8jUjMU+FLNvV9CD4zO2geY48yiekGWYrwiEeOsIMr/xN8G76TCVmQO4MN7SJk\n\
HyZEanmlB1SoxL3V/UYl/FZZ2CFgraRHzIpWSAM3FP/zYewA8DPuLeaDZXFbaXQn\n\
LVDVNgU7MYuiCCt9w4XaPQNqeOdm0WnJz3LZmEZUx1i7kTS07rDyFcWLo6jbeqNw\n\
+A5n9435DugC79iFrjh2FPP3VUg9cMTHTEJblXYm6BIM3VjeRKApwCC63S3rz/78\n\
jKnx9GrwhxP/rL7ol4rMzwzuMKt+MA902YUEQ1LETBYaBFV+G/bUJOa3tjOpQwMe\n\
wGu4F4sCgYEA25BYrxyLTqpXE4/d527Y264GA+yiH9KAloD/VjYOiTCFdXSj6wi9\n\
heuusWL/rzi8Sls5VbQXskRO1+aX1LdNMDRfR1aClCdK867etzgUstTXFuY3Ng7G\n\
U/uOj5hjvdKq1Uu4oiRlNk3W20tjqyjoTrl7IflGD4JfuGEtBDeJMicCgYEAujVS\n\
6sCzNTFhsnAILgMujibFbpSBanND/Pv7YFmMRwjRudJXvK+MuDrOp4aakWKjHKIi\n\
S3Iq5DnQG2xpB4XeadqSicF9FYLVIHz4+2HpsqVPjFonVH36jCuo06dmD0u7odHl\n\
xMwCJI85/sjnE/u2xecdeY9A/mwag6+R5sTBGRsCgYEAnOlHt716gTmTCVPjjiXV\n\
rQltGxjdtEhHxUdjM0VmlfyrJAm7q5iPeUm5iuPpPlwZlDole249ERVoEzukfkyR\n\
SUXkYaMdpqt+ETCD0gSuJi+dl6vnAScF7bb1ZwHNJjeMBusahCXmfyyZxBbYn9WY\n\
T8qWiO0QeLz/k1E/Tqgx0DkCgYBHcN33IyeeaOvKwiDhRmc+MrHc0y0z4jVbgnHX\n\
bYPcXQ3Z9VGkGtYqeKWAsKvsy6M5ARuXRp4eIfAuFVHWiQ3kHu/J2mpbLm8Gn+wG\n\
xnIbEEGM36nnSM4vqTCEw9zsUWoTk6xL7NmFnU3q6rl9eT2OgDVWxhdxhZhGnb2k\n\
hChxsQKBgBUF23jG4fgfCzDrsvEEPD5ESrJrozLZBq5gE9KiKbnOAuDAj1/18SHx\n\
XijIJtoovqb/QK71WxP9xtngcf8fJL9DAl41fPWUC6G7GRrkql3HpedCI+MbRf7q\n\
beXXZIMyP+bz5P78Z4PgBNkF4g+LCmpZiii7qZRLo8840g7xSuu5\n\
-----END RSA PRIVATE KEY-----\n\
";
pub const RSA8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCftJxvKp09RFey\n\
HA8dw5fevJsk0srnuFKWPptDv5KgRaNBWBoXF8l2deSgwsKDxtGGcjLRfYKC2zPJ\n\
/mhF+wsNI6PO70eElnoVCNxRj89lzodJcPysrR8NVldv71uc10uvy7BoOi+ITf0O\n\
eB2WrblD3Zn4Nx8b02GJlky0Bkk862WxK5nTnkjzYg2yVcKsPq0+IuueRqRkqfih\n\
xlYnqZtvkJqXs8J3C3c3xRaZEhQP0KfwdileDr/sLOziNewpZTJhNOO3PrTE4c9x\n\
yJhybPDRB6XOuXcpsgwKD0arytUjHbuyC1T/GBzd1qLKh72/Ps4RH+/YIpcNe/Ks\n\
N7zsxRkdAgMBAAECggEAN2iQq6rzwclfyZ4dinyNSMxT4Us29X0IPjM7aB5jjzKJ\n\
6QZZivCIR46wgyv/E3wbvpMJWZA7gw3tImQfJkRqeaUHVKjEvdX9RiX8VlnYIWCt\n\
pEfMilZIAzcU//Nh7ADwM+4t5oNlcVtpdCctUNU2BTsxi6IIK33Dhdo9A2p452bR\n\
acnPctmYRlTHWLuRNLTusPIVxYujqNt6o3D4Dmf3jfkO6ALv2IWuOHYU8/dVSD1w\n\
xMdMQluVdiboEgzdWN5EoCnAILrdLevP/vyMqfH0avCHE/+svuiXiszPDO4wq34w\n\
D3TZhQRDUsRMFhoEVX4b9tQk5re2M6lDAx7Aa7gXiwKBgQDbkFivHItOqlcTj93n\n\
btjbrgYD7KIf0oCWgP9WNg6JMIV1dKPrCL2F666xYv+vOLxKWzlVtBeyRE7X5pfU\n\
t00wNF9HVoKUJ0rzrt63OBSy1NcW5jc2DsZT+46PmGO90qrVS7iiJGU2TdbbS2Or\n\
KOhOuXsh+UYPgl+4YS0EN4kyJwKBgQC6NVLqwLM1MWGycAguAy6OJsVulIFqc0P8\n\
+/tgWYxHCNG50le8r4y4Os6nhpqRYqMcoiJLcirkOdAbbGkHhd5p2pKJwX0VgtUg\n\
fPj7YemypU+MWidUffqMK6jTp2YPS7uh0eXEzAIkjzn+yOcT+7bF5x15j0D+bBqD\n\
r5HmxMEZGwKBgQCc6Ue3vXqBOZMJU+OOJdWtCW0bGN20SEfFR2MzRWaV/KskCbur\n\
mI95SbmK4+k+XBmUOiV7bj0RFWgTO6R+TJFJReRhox2mq34RMIPSBK4mL52Xq+cB\n\
JwXttvVnAc0mN4wG6xqEJeZ/LJnEFtif1ZhPypaI7RB4vP+TUT9OqDHQOQKBgEdw\n\
3fcjJ55o68rCIOFGZz4ysdzTLTPiNVuCcddtg9xdDdn1UaQa1ip4pYCwq+zLozkB\n\
G5dGnh4h8C4VUdaJDeQe78naalsubwaf7AbGchsQQYzfqedIzi+pMITD3OxRahOT\n\
rEvs2YWdTerquX15PY6ANVbGF3GFmEadvaSEKHGxAoGAFQXbeMbh+B8LMOuy8QQ8\n\
PkRKsmujMtkGrmAT0qIpuc4C4MCPX/XxIfFeKMgm2ii+pv9ArvVbE/3G2eBx/x8k\n\
v0MCXjV89ZQLobsZGuSqXcel50Ij4xtF/upt5ddkgzI/5vPk/vxng+AE2QXiD4sK\n\
almKKLuplEujzzjSDvFK67k=\n\
-----END PRIVATE KEY-----\n\
";
pub const EC1: &str = "\
-----BEGIN EC PRIVATE KEY-----\n\
MHcCAQEEIInSujYuN4QG/qGl2eyIgfv1agb0ZFMzoEHZx/SrHMJeoAoGCCqGSM49\n\
AwEHoUQDQgAEm2yPNBYmyg1aDjQKfu6lYuG3QVDqRvJSwxKdxBV//lMNqH3y53HO\n\
S0kvMalBmVWbwOsqfwDkH1TdgNY9soi0ew==\n\
-----END EC PRIVATE KEY-----\n\
";
pub const EC8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgidK6Ni43hAb+oaXZ\n\
7IiB+/VqBvRkUzOgQdnH9Kscwl6hRANCAASbbI80FibKDVoONAp+7qVi4bdBUOpG\n\
8lLDEp3EFX/+Uw2offLncc5LSS8xqUGZVZvA6yp/AOQfVN2A1j2yiLR7\n\
-----END PRIVATE KEY-----\n\
";
