//! NATS JetStream: each event published to `SUBJECT.TYPE.VERB` with `Nats-Msg-Id` set to its
//! ID, and every ack awaited before the batch counts as sent. Within the stream's duplicate
//! window the server drops a message it has by that ID, so a batch sent again (after an error,
//! or a restart) is stored once.

use std::time::Duration;

use super::record::Record;
use super::ship::SendError;
use super::spec::{NatsAuth, Tls};

pub struct Nats {
    address: String,
    subject: String,
    options: async_nats::ConnectOptions,
    timeout: Duration,
    js: Option<async_nats::jetstream::Context>,
}

impl Nats {
    pub fn new(
        host: &str,
        port: u16,
        subject: String,
        tls: Option<&Tls>,
        auth: &NatsAuth,
        timeout: Duration,
    ) -> Self {
        let mut o = async_nats::ConnectOptions::new()
            .name(concat!(
                "docker-events-exporter/",
                env!("CARGO_PKG_VERSION")
            ))
            .connection_timeout(timeout)
            .request_timeout(Some(timeout));
        o = match auth {
            NatsAuth::None => o,
            NatsAuth::UserPassword(user, pw) => {
                o.user_and_password(user.clone(), pw.expose().to_owned())
            }
            NatsAuth::Token(t) => o.token(t.expose().to_owned()),
        };
        if let Some(tls) = tls {
            o = o.require_tls(true);
            if let Some(ca) = &tls.ca {
                o = o.add_root_certificates(ca.clone());
            }
            if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                o = o.add_client_certificate(cert.clone(), key.clone());
            }
        }
        Self {
            address: format!("{}:{port}", super::spec::bracketed(host)),
            subject,
            options: o,
            timeout,
            js: None,
        }
    }

    async fn context(&mut self) -> Result<&async_nats::jetstream::Context, SendError> {
        if self.js.is_none() {
            // Once connected, the client reconnects on its own.
            let client = self
                .options
                .clone()
                .connect(self.address.as_str())
                .await
                .map_err(|e| SendError::Retry {
                    reason: "network",
                    after: None,
                    detail: e.to_string(),
                })?;
            let mut js = async_nats::jetstream::new(client);
            js.set_timeout(self.timeout);
            self.js = Some(js);
        }
        Ok(self.js.as_ref().expect("set just above"))
    }

    pub async fn send(&mut self, batch: &[Record]) -> Result<(), SendError> {
        use async_nats::jetstream::context::PublishErrorKind;
        let subject = self.subject.clone();
        let js = self.context().await?;
        let mut acks = Vec::with_capacity(batch.len());
        let failed = |e: async_nats::jetstream::context::PublishError| match e.kind() {
            PublishErrorKind::StreamNotFound => SendError::Retry {
                reason: "no_stream",
                after: None,
                detail: format!(
                    "no JetStream stream takes subject {subject}.>; create one (nats stream add \
                     --subjects '{subject}.>'), the exporter keeps trying"
                ),
            },
            PublishErrorKind::TimedOut => SendError::Retry {
                reason: "timeout",
                after: None,
                detail: e.to_string(),
            },
            _ => SendError::Retry {
                reason: "network",
                after: None,
                detail: e.to_string(),
            },
        };
        // An event over the server's max_payload is refused alone; the others go.
        let mut too_big = Vec::new();
        for r in batch {
            let publish = async_nats::jetstream::message::PublishMessage::build()
                .payload(bytes::Bytes::copy_from_slice(&r.line))
                .message_id(&r.id);
            let to = format!("{subject}.{}", subject_tail(r));
            match js.send_publish(to, publish).await {
                Ok(ack) => acks.push(ack),
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    too_big.push(format!("{} ({} bytes)", r.id, r.line.len()));
                }
                Err(e) => return Err(failed(e)),
            }
        }
        for ack in acks {
            ack.await.map_err(failed)?;
        }
        match too_big.len() {
            0 => Ok(()),
            n => Err(SendError::Partial {
                rejected: n as u64,
                detail: format!("over the max_payload of the server: {}", too_big.join(", ")),
            }),
        }
    }
}

/// `TYPE.VERB`, as tokens a subject may hold (no wildcard, no empty token).
fn subject_tail(r: &Record) -> String {
    let name = r.name.strip_prefix("docker.").unwrap_or(&r.name);
    name.split('.')
        .map(|token| {
            let t: String = token
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if t.is_empty() { "_".to_owned() } else { t }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_tail_is_always_valid_tokens() {
        let record = |name: &str| Record {
            line: Vec::new(),
            time_nano: 0,
            name: name.to_owned(),
            level: super::super::record::Level::Info,
            id: String::new(),
            attributes: Vec::new(),
        };
        assert_eq!(
            subject_tail(&record("docker.container.die")),
            "container.die"
        );
        assert_eq!(subject_tail(&record("docker..die")), "_.die");
        assert_eq!(
            subject_tail(&record("docker.plug*in.a>b c")),
            "plug_in.a_b_c"
        );
    }
}
