//! Where the engine is and how to reach it: a unix socket, plain TCP, TCP with TLS (the docker
//! CLI's `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`), or `ssh` to the engine's
//! host ([`super::ssh`]).
//!
//! Requests go over HTTP/1 connections kept open between them ([`Endpoint::send`]): an inspect
//! per container lifecycle would otherwise pay a connect (and on TCP a handshake) each. The one
//! long-lived `GET /events` has a connection of its own ([`Endpoint::stream`]), and so has each
//! ping ([`Endpoint::send_once`]). Both our raw requests and bollard's typed ones (as a custom
//! transport) go through here, so there is one connection path and TLS is always available,
//! whatever features bollard was built with.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::paced::Paced;
use super::ssh;

/// How long to wait for a connection (TCP connect plus TLS handshake) before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections kept for the next request: as many as inspects run at once (a snapshot's 8).
pub const MAX_KEPT_CONNECTIONS: usize = 8;

/// Default port of a plain-TCP engine (`tcp://host` without a port).
const DEFAULT_TCP_PORT: u16 = 2375;
/// Default port of a TLS engine.
const DEFAULT_TLS_PORT: u16 = 2376;

/// A problem with the engine address or its TLS files, found before any connection is made.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("docker host {host:?}: {reason}")]
    Host { host: String, reason: String },
    #[error(
        "cannot read {what} {path}: {source}; set DOCKER_CERT_PATH (--docker.cert-path) to the folder holding ca.pem, cert.pem and key.pem"
    )]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("TLS set-up: {0}")]
    Tls(#[from] tokio_rustls::rustls::Error),
}

/// A failed request to the engine.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("cannot connect to the Docker Engine at {endpoint}")]
    Connect { endpoint: String, source: io::Error },
    #[error("timed out connecting to the Docker Engine at {endpoint}")]
    ConnectTimeout { endpoint: String },
    #[error("HTTP exchange with the Docker Engine failed")]
    Http(#[from] hyper::Error),
    #[error("invalid request to the Docker Engine")]
    BadRequest(#[from] http::Error),
}

/// Any request body, as the kept connections take it.
type AnyBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
type Sender = SendRequest<AnyBody>;

/// The engine's address, resolved and with its TLS configuration loaded. Clones share the
/// kept connections.
#[derive(Clone)]
pub struct Endpoint {
    kind: Kind,
    /// What we print: the address without anything secret (there is nothing secret in it).
    display: String,
    /// The Host header we send.
    host_header: HeaderValue,
    /// Connections kept after a request: each is ready again once its response is read to its
    /// end, and closed by hyper if the response was dropped half-read.
    kept: Arc<Mutex<Vec<Sender>>>,
    /// How [`Endpoint::stream`] paces its reads ([`super::paced`]); zero: not at all.
    batch_window: Duration,
}

#[derive(Clone)]
enum Kind {
    Unix(PathBuf),
    Tcp(String),
    Tls {
        authority: String,
        server_name: ServerName<'static>,
        connector: TlsConnector,
    },
    Ssh(ssh::Target),
}

fn empty_body() -> AnyBody {
    UnsyncBoxBody::new(http_body_util::Empty::<Bytes>::new().map_err(|never| match never {}))
}

/// A copy of `req` to send again, if it has no body (all of ours but none of the engine's
/// writes, which we never make).
fn without_body(req: &Request<AnyBody>) -> Option<Request<AnyBody>> {
    if req.body().size_hint().exact() != Some(0) {
        return None;
    }
    let mut again = Request::new(empty_body());
    *again.method_mut() = req.method().clone();
    *again.uri_mut() = req.uri().clone();
    *again.version_mut() = req.version();
    *again.headers_mut() = req.headers().clone();
    Some(again)
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

impl Endpoint {
    /// Resolves `host` (a DOCKER_HOST value). `tls` asks for TLS with the files in `cert_path`;
    /// like the docker CLI, it has no effect on a unix socket. An `https://` host always uses TLS.
    pub fn parse(host: &str, tls: bool, cert_path: &Path) -> Result<Self, EndpointError> {
        let bad = |reason: &str| EndpointError::Host {
            host: host.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = host
            .split_once("://")
            .ok_or_else(|| bad("no scheme; use unix:///path/to/docker.sock or tcp://host:port"))?;
        match scheme {
            "unix" => {
                if rest.is_empty() {
                    return Err(bad("no socket path; use unix:///var/run/docker.sock"));
                }
                Ok(Self {
                    display: format!("unix://{rest}"),
                    kind: Kind::Unix(PathBuf::from(rest)),
                    host_header: HeaderValue::from_static("docker"),
                    kept: Arc::default(),
                    batch_window: Duration::ZERO,
                })
            }
            "tcp" | "http" | "https" => {
                let tls = tls || scheme == "https";
                let authority = rest.trim_end_matches('/');
                if authority.is_empty() || authority.contains('/') {
                    return Err(bad(
                        "expected host:port after the scheme, e.g. tcp://10.0.0.5:2376",
                    ));
                }
                let uri: http::uri::Authority = authority
                    .parse()
                    .map_err(|_| bad("not a valid host:port"))?;
                let port = uri.port_u16().unwrap_or(if tls {
                    DEFAULT_TLS_PORT
                } else {
                    DEFAULT_TCP_PORT
                });
                let host_only = uri
                    .host()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let authority = format!("{}:{port}", uri.host());
                let host_header =
                    HeaderValue::from_str(&authority).map_err(|_| bad("not a valid host:port"))?;
                if !tls {
                    return Ok(Self {
                        display: format!("tcp://{authority}"),
                        kind: Kind::Tcp(authority),
                        host_header,
                        kept: Arc::default(),
                        batch_window: Duration::ZERO,
                    });
                }
                let server_name = ServerName::try_from(host_only)
                    .map_err(|_| bad("host is not a valid TLS server name"))?;
                let config = tls_config(cert_path)?;
                Ok(Self {
                    display: format!("tcp://{authority} (TLS)"),
                    kind: Kind::Tls {
                        authority,
                        server_name,
                        connector: TlsConnector::from(Arc::new(config)),
                    },
                    host_header,
                    kept: Arc::default(),
                    batch_window: Duration::ZERO,
                })
            }
            "ssh" => Ok(Self {
                display: format!("ssh://{rest}"),
                kind: Kind::Ssh(ssh::Target::parse(rest).map_err(bad)?),
                host_header: HeaderValue::from_static("docker"),
                kept: Arc::default(),
                batch_window: Duration::ZERO,
            }),
            "npipe" => Err(bad("npipe:// (Windows) is not supported")),
            _ => Err(bad(
                "unknown scheme; use unix://, tcp://, http://, https:// or ssh://",
            )),
        }
    }

    /// Reads the event stream at most once per `window` while events keep coming
    /// (`--docker.batch-window`).
    pub fn with_batch_window(mut self, window: Duration) -> Self {
        self.batch_window = window;
        self
    }

    /// A new connection; with `paced`, read at the pace its window (in nanoseconds) sets.
    async fn connect(&self, paced: Option<&Arc<AtomicU64>>) -> Result<Box<dyn Io>, RequestError> {
        let connect = async {
            Ok::<Box<dyn Io>, io::Error>(match &self.kind {
                Kind::Unix(path) => {
                    let unix = UnixStream::connect(path).await?;
                    match paced {
                        Some(window) => Box::new(Paced::new(unix, window.clone())),
                        None => Box::new(unix),
                    }
                }
                Kind::Tcp(authority) => {
                    let tcp = TcpStream::connect(authority.as_str()).await?;
                    tcp.set_nodelay(true)?;
                    match paced {
                        Some(window) => Box::new(Paced::new(tcp, window.clone())),
                        None => Box::new(tcp),
                    }
                }
                // A pipe from ssh, read as it comes: pacing takes a socket out of the epoll
                // set, and the ssh process batches its reads itself.
                Kind::Ssh(target) => Box::new(target.connect()?),
                Kind::Tls {
                    authority,
                    server_name,
                    connector,
                } => {
                    let tcp = TcpStream::connect(authority.as_str()).await?;
                    tcp.set_nodelay(true)?;
                    let name = server_name.clone();
                    match paced {
                        Some(window) => {
                            let tcp = Paced::new(tcp, window.clone());
                            Box::new(connector.connect(name, tcp).await?)
                        }
                        None => Box::new(connector.connect(name, tcp).await?),
                    }
                }
            })
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(io)) => Ok(io),
            Ok(Err(source)) => Err(RequestError::Connect {
                endpoint: self.display.clone(),
                source,
            }),
            Err(_) => Err(RequestError::ConnectTimeout {
                endpoint: self.display.clone(),
            }),
        }
    }

    /// Sends one request on a kept connection (or a new one, kept after) and returns the
    /// response with its body still streaming. Only the path and query of the request's URI
    /// are used. Read the body to its end: that frees the connection for the next request.
    pub async fn send<B>(&self, req: Request<B>) -> Result<Response<Incoming>, RequestError>
    where
        B: Body + Send + 'static,
        B::Data: Into<Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut req = self.prepare(req)?;
        while let Some(mut sender) = self.take_kept() {
            let again = without_body(&req);
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.keep(sender);
                    return Ok(resp);
                }
                Err(mut e) => match (e.take_message(), again) {
                    // Closed before the request went out: try the next one.
                    (Some(unsent), _) => req = unsent,
                    // Closed under the request before any answer (an idle connection that a
                    // proxy in front of the engine timed out): a request without a body is
                    // sent again, once, on a new connection.
                    (None, Some(again)) if e.error().is_incomplete_message() => {
                        req = again;
                        break;
                    }
                    (None, _) => return Err(RequestError::Http(e.into_error())),
                },
            }
        }
        let mut sender = self.open(None).await?;
        let resp = sender.send_request(req).await?;
        self.keep(sender);
        Ok(resp)
    }

    /// Sends one request on a connection of its own, closed after it: a ping, which must also
    /// find out whether the engine still takes connections (one that is shutting down does
    /// not, while it still answers on the connections it has).
    pub async fn send_once<B>(&self, req: Request<B>) -> Result<Response<Incoming>, RequestError>
    where
        B: Body + Send + 'static,
        B::Data: Into<Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let req = self.prepare(req)?;
        Ok(self.open(None).await?.send_request(req).await?)
    }

    /// Sends one request on a connection of its own, never kept, its body read at the pace of
    /// [`Endpoint::with_batch_window`] ([`super::paced`]): for a response that streams for as
    /// long as we watch (`GET /events`).
    pub async fn stream<B>(&self, req: Request<B>) -> Result<Response<Incoming>, RequestError>
    where
        B: Body + Send + 'static,
        B::Data: Into<Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if self.batch_window.is_zero() {
            return self.send_once(req).await;
        }
        let req = self.prepare(req)?;
        // Paced from the body on: the TLS handshake and the response head come at once.
        let window = Arc::new(AtomicU64::new(0));
        let resp = self.open(Some(&window)).await?.send_request(req).await?;
        let nanos = u64::try_from(self.batch_window.as_nanos()).unwrap_or(u64::MAX);
        window.store(nanos, Ordering::Relaxed);
        Ok(resp)
    }

    /// The request as the engine gets it: origin-form URI, our Host header, any body.
    fn prepare<B>(&self, req: Request<B>) -> Result<Request<AnyBody>, RequestError>
    where
        B: Body + Send + 'static,
        B::Data: Into<Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = Uri::try_from(path).map_err(http::Error::from)?;
        parts.headers.insert(HOST, self.host_header.clone());
        // An empty body stays one that says so, so that the request can be sent again.
        if body.size_hint().exact() == Some(0) {
            return Ok(Request::from_parts(parts, empty_body()));
        }
        let body = body
            .map_frame(|f| f.map_data(Into::into))
            .map_err(Into::into);
        Ok(Request::from_parts(parts, UnsyncBoxBody::new(body)))
    }

    /// A new connection, its task spawned: it ends when its sender is dropped and its last
    /// response is read or dropped. `paced`: see [`Self::connect`].
    async fn open(&self, paced: Option<&Arc<AtomicU64>>) -> Result<Sender, RequestError> {
        let io = self.connect(paced).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "engine connection closed with an error");
            }
        });
        Ok(sender)
    }

    /// A kept connection that can take a request now, if there is one.
    fn take_kept(&self) -> Option<Sender> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.retain(|s| !s.is_closed());
        let ready = kept.iter().position(SendRequest::is_ready)?;
        Some(kept.swap_remove(ready))
    }

    /// Keeps a connection for later requests, unless [`MAX_KEPT_CONNECTIONS`] are kept already
    /// (then it closes once its response is read).
    fn keep(&self, sender: Sender) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.retain(|s| !s.is_closed());
        if kept.len() < MAX_KEPT_CONNECTIONS {
            kept.push(sender);
        }
    }
}

fn tls_config(cert_path: &Path) -> Result<ClientConfig, EndpointError> {
    let file = |name: &str| cert_path.join(name);
    let ca = file("ca.pem");
    let mut roots = RootCertStore::empty();
    let ca_certs = CertificateDer::pem_file_iter(&ca)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| EndpointError::TlsFile {
            what: "CA certificate",
            path: ca.clone(),
            source,
        })?;
    for cert in ca_certs {
        roots.add(cert)?;
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let (cert, key) = (file("cert.pem"), file("key.pem"));
    // The docker CLI presents a client certificate when one is there; so do we.
    if !cert.exists() && !key.exists() {
        return Ok(builder.with_no_client_auth());
    }
    let chain = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| EndpointError::TlsFile {
            what: "client certificate",
            path: cert.clone(),
            source,
        })?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|source| EndpointError::TlsFile {
        what: "client key",
        path: key.clone(),
        source,
    })?;
    Ok(builder.with_client_auth_cert(chain, key)?)
}

/// Boxed future type that bollard's custom transport expects.
pub type TransportFuture = Pin<
    Box<
        dyn std::future::Future<Output = Result<Response<Incoming>, bollard::errors::Error>> + Send,
    >,
>;

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};

    use http_body_util::Empty;

    use super::*;

    fn parse(host: &str) -> Result<Endpoint, EndpointError> {
        Endpoint::parse(host, false, Path::new("/nonexistent"))
    }

    /// Reads one request head from `r`; false at the end of the connection.
    fn read_head(r: &mut impl BufRead) -> bool {
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return false,
                Ok(_) if line == "\r\n" => return true,
                Ok(_) => {}
            }
        }
    }

    async fn get_text(e: &Endpoint, path: &str) -> String {
        let req = Request::get(path)
            .body(Empty::<Bytes>::new())
            .expect("a request");
        let resp = e.send(req).await.expect("an answer");
        let body = resp.into_body().collect().await.expect("a body").to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    }

    /// A kept connection serves the next request; one closed under a request (as a proxy in
    /// front of the engine closes an idle one) has the request sent again on a new one.
    #[tokio::test]
    async fn kept_connections_are_reused_and_a_request_a_closed_one_lost_is_sent_again() {
        let dir = std::env::temp_dir().join(format!("dee-kept-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let socket = dir.join("engine.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let server = std::thread::spawn(move || {
            let answer = |s: &mut std::os::unix::net::UnixStream, body: &str| {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                s.write_all(format!("{head}{body}").as_bytes())
                    .expect("answer");
            };
            // The first connection answers two requests, then reads a third and closes.
            let (mut first, _) = listener.accept().expect("a connection");
            let mut reader = BufReader::new(first.try_clone().expect("clone"));
            for body in ["one", "two"] {
                assert!(read_head(&mut reader), "a request");
                answer(&mut first, body);
            }
            assert!(read_head(&mut reader), "a third request");
            drop((reader, first));
            // The request comes again on a new connection.
            let (mut second, _) = listener.accept().expect("a second connection");
            let mut reader = BufReader::new(second.try_clone().expect("clone"));
            assert!(read_head(&mut reader), "the request again");
            answer(&mut second, "three");
            assert!(!read_head(&mut reader), "nothing more");
        });
        let e = parse(&format!("unix://{}", socket.display())).expect("parses");
        assert_eq!(get_text(&e, "/a").await, "one");
        assert_eq!(get_text(&e, "/b").await, "two", "on the kept connection");
        assert_eq!(get_text(&e, "/c").await, "three", "sent again");
        // Dropping the endpoint closes its kept connections (their tasks run while we wait).
        drop(e);
        let joined = tokio::task::spawn_blocking(move || server.join()).await;
        assert!(
            matches!(joined, Ok(Ok(()))),
            "the server saw what it expected"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unix_socket_path_is_kept() {
        let e = parse("unix:///var/run/docker.sock").expect("parses");
        assert_eq!(e.to_string(), "unix:///var/run/docker.sock");
    }

    #[test]
    fn tcp_without_port_gets_2375() {
        assert_eq!(
            parse("tcp://10.0.0.5").expect("parses").to_string(),
            "tcp://10.0.0.5:2375"
        );
        assert_eq!(
            parse("tcp://[::1]:2380/").expect("parses").to_string(),
            "tcp://[::1]:2380"
        );
    }

    #[test]
    fn tls_with_missing_files_names_the_file_and_the_fix() {
        let err = Endpoint::parse("tcp://10.0.0.5:2376", true, Path::new("/nonexistent/certs"))
            .expect_err("no ca.pem there");
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot read CA certificate /nonexistent/certs/ca.pem: "),
            "{msg}"
        );
        assert!(msg.ends_with("; set DOCKER_CERT_PATH (--docker.cert-path) to the folder holding ca.pem, cert.pem and key.pem"), "{msg}");
    }

    #[test]
    fn https_scheme_means_tls_even_without_the_flag() {
        let err = parse("https://10.0.0.5").expect_err("no certs");
        assert!(matches!(err, EndpointError::TlsFile { .. }), "{err}");
    }

    #[test]
    fn unsupported_schemes_say_what_to_use() {
        assert_eq!(
            parse("ssh://me@host/var/run/docker.sock")
                .expect_err("a path")
                .to_string(),
            "docker host \"ssh://me@host/var/run/docker.sock\": no path after the host; the remote's docker finds its own engine"
        );
        assert_eq!(
            parse("/var/run/docker.sock")
                .expect_err("no scheme")
                .to_string(),
            "docker host \"/var/run/docker.sock\": no scheme; use unix:///path/to/docker.sock or tcp://host:port"
        );
    }
}
