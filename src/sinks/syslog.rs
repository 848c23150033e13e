//! Syslog: RFC 5424 messages over TCP with octet-counting framing (RFC 6587), or over TLS
//! (RFC 5425). The protocol has no acknowledgement: a batch counts as sent once written, and
//! before the next one the connection is checked. A new connection, after the store closed the
//! last one or a write failed, begins with the batch written last on the one before (so a
//! store may receive one batch twice, never none).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

use super::record::{Level, Origin, Record};
use super::ship::SendError;
use super::spec::Tls;

/// The SD-ID of our structured data: a private one (`name@number`), under 32473, the number
/// RFC 5612 sets aside for documentation, since the project has no enterprise number of its own.
pub const SD_ID: &str = "docker@32473";

/// Appends one framed message (`LEN SP MSG`) for `r` to `out`.
pub fn frame(out: &mut Vec<u8>, r: &Record, origin: &Origin, app_name: &str, facility: u8) {
    let severity = match r.level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
    };
    let mut msg = String::with_capacity(r.line.len() + 256);
    let _ = write!(
        msg,
        "<{}>1 {} {} {app_name} - {} [{SD_ID}",
        u16::from(facility) * 8 + severity,
        timestamp(r.time_nano),
        header_field(&origin.host, 255),
        header_field(&r.name.replacen("docker.", "", 1), 32),
    );
    let mut param = |name: &str, value: &str| {
        if !value.is_empty() {
            msg.push(' ');
            msg.push_str(name);
            msg.push_str("=\"");
            for c in value.chars() {
                // RFC 5424 6.3.3: '"', '\' and ']' are escaped in a PARAM-VALUE.
                if matches!(c, '"' | '\\' | ']') {
                    msg.push('\\');
                }
                msg.push(c);
            }
            msg.push('"');
        }
    };
    param("id", &r.id);
    param("engine", &origin.engine);
    for (name, key) in [
        ("type", "docker.event.type"),
        ("action", "docker.event.action"),
        ("actor", "container.id"),
        ("name", "container.name"),
        ("image", "container.image.name"),
        ("exitCode", "process.exit.code"),
        ("signal", "docker.container.signal"),
        ("health", "docker.container.health"),
        ("network", "network.name"),
        ("volume", "docker.volume.name"),
    ] {
        param(name, r.attr(key).unwrap_or_default());
    }
    msg.push_str("] ");
    msg.push_str(&r.text());
    // RFC 6587 octet counting: the message's length in bytes, a space, the message.
    out.extend_from_slice(format!("{} ", msg.len()).as_bytes());
    out.extend_from_slice(msg.as_bytes());
}

/// An RFC 5424 TIMESTAMP: UTC, at most 6 fraction digits.
fn timestamp(nano: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nano))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// A header field: printable ASCII without spaces, at most `max` long, `-` if empty.
fn header_field(s: &str, max: usize) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if f.is_empty() { "-".into() } else { f }
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// Whether the store is still there: a syslog receiver sends nothing, so a read that
    /// does not wait means it closed (or broke) the connection. Read through TLS, so that what
    /// the TLS layer itself sends (TLS 1.3 session tickets) is taken by it, not taken for data.
    fn alive(&mut self) -> bool {
        use futures_util::FutureExt as _;
        use tokio::io::AsyncReadExt as _;
        let mut probe = [0u8; 64];
        let read = match self {
            Self::Tcp(t) => t.read(&mut probe).now_or_never(),
            Self::Tls(t) => t.read(&mut probe).now_or_never(),
        };
        matches!(read, None | Some(Ok(1..)))
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Tcp(t) => t.write_all(bytes).await,
            Self::Tls(t) => {
                t.write_all(bytes).await?;
                t.flush().await
            }
        }
    }
}

pub struct Syslog {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    app_name: String,
    facility: u8,
    timeout: Duration,
    origin: Origin,
    conn: Option<Conn>,
    /// The last batch written on this connection, until the next one finds it alive.
    last: Vec<u8>,
}

impl Syslog {
    pub fn new(
        host: String,
        port: u16,
        tls: Option<&Tls>,
        app_name: String,
        facility: u8,
        timeout: Duration,
        origin: Origin,
    ) -> anyhow::Result<Self> {
        let tls = match tls {
            Some(files) => {
                let server = ServerName::try_from(host.clone())
                    .map_err(|e| anyhow::anyhow!("{host:?} is not a TLS server name: {e}"))?;
                Some((TlsConnector::from(Arc::new(client_config(files)?)), server))
            }
            None => None,
        };
        Ok(Self {
            host,
            port,
            tls,
            app_name,
            facility,
            timeout,
            origin,
            conn: None,
            last: Vec::new(),
        })
    }

    async fn connect(&self) -> std::io::Result<Conn> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        Ok(match &self.tls {
            Some((connector, name)) => {
                Conn::Tls(Box::new(connector.connect(name.clone(), tcp).await?))
            }
            None => Conn::Tcp(tcp),
        })
    }

    pub async fn send(&mut self, batch: &[Record]) -> Result<(), SendError> {
        let mut bytes = Vec::with_capacity(batch.iter().map(|r| r.line.len() + 300).sum());
        for r in batch {
            frame(&mut bytes, r, &self.origin, &self.app_name, self.facility);
        }
        let timeout = self.timeout;
        let result = tokio::time::timeout(timeout, async {
            if self.conn.as_mut().is_some_and(|c| !c.alive()) {
                self.conn = None;
            }
            if self.conn.is_none() {
                let mut conn = self.connect().await?;
                // The batch written last, on a connection that has since gone: the store may
                // not have read it.
                if !self.last.is_empty() {
                    conn.write_all(&self.last).await?;
                }
                self.conn = Some(conn);
            }
            let conn = self.conn.as_mut().expect("set just above");
            conn.write_all(&bytes).await
        })
        .await;
        match result {
            Ok(Ok(())) => {
                self.last = bytes;
                Ok(())
            }
            Ok(Err(e)) => {
                self.conn = None;
                Err(SendError::Retry {
                    reason: "network",
                    after: None,
                    detail: e.to_string(),
                })
            }
            Err(_) => {
                self.conn = None;
                Err(SendError::Retry {
                    reason: "timeout",
                    after: None,
                    detail: format!("no progress in {timeout:?}"),
                })
            }
        }
    }
}

/// A TLS client's configuration: the CA file's roots, else the system's; a client certificate
/// when given.
pub fn client_config(files: &Tls) -> anyhow::Result<ClientConfig> {
    use tokio_rustls::rustls::RootCertStore;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let mut roots = RootCertStore::empty();
    match &files.ca {
        Some(ca) => {
            for cert in CertificateDer::pem_file_iter(ca)
                .map_err(|e| anyhow::anyhow!("?ca={}: {e}", ca.display()))?
            {
                roots.add(cert.map_err(|e| anyhow::anyhow!("?ca={}: {e}", ca.display()))?)?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    Ok(match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("?cert={}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| anyhow::anyhow!("?key={}: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::event::Event;

    #[test]
    fn a_message_is_rfc_5424_with_escaped_structured_data() {
        let origin = Origin {
            engine: "vm".into(),
            host: "vm host".into(),
            engine_id: "ID".into(),
        };
        let line = br#"{"Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{"exitCode":"1","name":"we\"b]\\x"}},"scope":"local","time":7,"timeNano":7000000123456789}"#;
        let ev = Event::decode(line).expect("event");
        let r = Record::new(&origin, &ev, line);
        let mut out = Vec::new();
        frame(&mut out, &r, &origin, "docker-events", 3);
        let text = String::from_utf8(out).expect("utf-8");
        let (len, msg) = text.split_once(' ').expect("framed");
        assert_eq!(len.parse::<usize>().ok(), Some(msg.len()));
        let want = format!(
            "<28>1 1970-03-23T00:26:40.123456Z vmhost docker-events - container.die [docker@32473 id=\"{}\" engine=\"vm\" type=\"container\" action=\"die\" actor=\"c1\" name=\"we\\\"b\\]\\\\x\" exitCode=\"1\"] {}",
            r.id,
            String::from_utf8_lossy(line)
        );
        assert_eq!(msg, want);
    }
}
