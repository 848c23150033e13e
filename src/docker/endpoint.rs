//! Where the engine is and how to reach it: a unix socket, plain TCP, or TCP with TLS (the
//! docker CLI's `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`).
//!
//! Every request opens its own HTTP/1 connection. That suits what we send: one long-lived
//! `GET /events`, a ping every few seconds, and an inspect now and then. Both our raw requests and
//! bollard's typed ones (as a custom transport) go through [`Endpoint::send`], so there is one
//! connection path and TLS is always available, whatever features bollard was built with.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::header::HOST;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// How long to wait for a connection (TCP connect plus TLS handshake) before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The engine's address, resolved and with its TLS configuration loaded.
#[derive(Clone)]
pub struct Endpoint {
    kind: Kind,
    /// What we print: the address without anything secret (there is nothing secret in it).
    display: String,
    /// The Host header we send.
    host_header: HeaderValue,
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
                })
            }
            "ssh" => Err(bad(
                "ssh:// is not supported; forward the socket (ssh -L) and use unix:// or tcp://",
            )),
            "npipe" => Err(bad("npipe:// (Windows) is not supported")),
            _ => Err(bad(
                "unknown scheme; use unix://, tcp://, http:// or https://",
            )),
        }
    }

    async fn connect(&self) -> Result<Box<dyn Io>, RequestError> {
        let connect = async {
            Ok::<Box<dyn Io>, io::Error>(match &self.kind {
                Kind::Unix(path) => Box::new(UnixStream::connect(path).await?),
                Kind::Tcp(authority) => {
                    let tcp = TcpStream::connect(authority.as_str()).await?;
                    tcp.set_nodelay(true)?;
                    Box::new(tcp)
                }
                Kind::Tls {
                    authority,
                    server_name,
                    connector,
                } => {
                    let tcp = TcpStream::connect(authority.as_str()).await?;
                    tcp.set_nodelay(true)?;
                    Box::new(connector.connect(server_name.clone(), tcp).await?)
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

    /// Sends one request on a new connection and returns the response with its body still
    /// streaming. Only the path and query of the request's URI are used.
    pub async fn send<B>(&self, mut req: Request<B>) -> Result<Response<Incoming>, RequestError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        *req.uri_mut() = Uri::try_from(path).map_err(http::Error::from)?;
        req.headers_mut().insert(HOST, self.host_header.clone());
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        // The connection task ends when the response body is read to its end or dropped.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "engine connection closed with an error");
            }
        });
        Ok(sender.send_request(req).await?)
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
    use super::*;

    fn parse(host: &str) -> Result<Endpoint, EndpointError> {
        Endpoint::parse(host, false, Path::new("/nonexistent"))
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
            parse("ssh://me@host").expect_err("ssh").to_string(),
            "docker host \"ssh://me@host\": ssh:// is not supported; forward the socket (ssh -L) and use unix:// or tcp://"
        );
        assert_eq!(
            parse("/var/run/docker.sock")
                .expect_err("no scheme")
                .to_string(),
            "docker host \"/var/run/docker.sock\": no scheme; use unix:///path/to/docker.sock or tcp://host:port"
        );
    }
}
