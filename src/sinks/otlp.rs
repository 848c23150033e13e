//! OpenTelemetry logs over HTTP (OTLP/HTTP): one `ExportLogsServiceRequest` a batch, protobuf by
//! default or JSON, to `/v1/logs`. The messages below are the part of
//! `opentelemetry/proto/logs/v1` and `collector/logs/v1` that we send and read, with their field
//! numbers; the JSON follows the OTLP/JSON mapping (lowerCamelCase, 64-bit integers as strings).

use std::time::Duration;

use super::record::{Level, Origin, Record};
use super::ship::SendError;
use crate::secret::Secret;

#[derive(Clone, PartialEq, prost::Message)]
struct ExportLogsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    resource_logs: Vec<ResourceLogs>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ExportLogsServiceResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<PartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartialSuccess {
    #[prost(int64, tag = "1")]
    #[serde(default, deserialize_with = "int_or_string")]
    rejected_log_records: i64,
    #[prost(string, tag = "2")]
    #[serde(default)]
    error_message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceLogs {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    scope_logs: Vec<ScopeLogs>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Resource {
    #[prost(message, repeated, tag = "1")]
    attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeLogs {
    #[prost(message, optional, tag = "1")]
    scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    log_records: Vec<LogRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct InstrumentationScope {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LogRecord {
    #[prost(fixed64, tag = "1")]
    time_unix_nano: u64,
    #[prost(int32, tag = "2")]
    severity_number: i32,
    #[prost(string, tag = "3")]
    severity_text: String,
    #[prost(message, optional, tag = "5")]
    body: Option<AnyValue>,
    #[prost(message, repeated, tag = "6")]
    attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "11")]
    observed_time_unix_nano: u64,
    #[prost(string, tag = "12")]
    event_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct KeyValue {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AnyValue {
    #[prost(string, tag = "1")]
    string_value: String,
}

/// `SeverityNumber`: INFO, WARN and ERROR.
fn severity_number(level: Level) -> i32 {
    match level {
        Level::Info => 9,
        Level::Warn => 13,
        Level::Error => 17,
    }
}

fn string(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        string_value: s.to_owned(),
    })
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: string(value),
    }
}

/// The resource: the engine the events are of.
fn resource(origin: &Origin) -> Vec<(&'static str, &str)> {
    vec![
        ("service.name", "docker"),
        ("host.name", origin.host.as_str()),
        ("docker.engine.name", origin.engine.as_str()),
        ("docker.engine.id", origin.engine_id.as_str()),
    ]
}

/// The attributes of a record: its semantic-convention ones and the stable ID.
fn attributes(r: &Record) -> impl Iterator<Item = (&str, &str)> {
    std::iter::once(("log.record.uid", r.id.as_str()))
        .chain(r.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn request(origin: &Origin, batch: &[Record], observed: u64) -> ExportLogsServiceRequest {
    let log_records = batch
        .iter()
        .map(|r| LogRecord {
            time_unix_nano: u64::try_from(r.time_nano).unwrap_or(0),
            severity_number: severity_number(r.level),
            severity_text: r.level.as_str().to_owned(),
            body: string(&r.text()),
            attributes: attributes(r).map(|(k, v)| kv(k, v)).collect(),
            observed_time_unix_nano: observed,
            event_name: r.name.clone(),
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource(origin)
                    .into_iter()
                    .map(|(k, v)| kv(k, v))
                    .collect(),
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "docker-events-exporter".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                }),
                log_records,
            }],
        }],
    }
}

/// The same request in OTLP/JSON: lowerCamelCase names, 64-bit integers as strings.
fn request_json(origin: &Origin, batch: &[Record], observed: u64) -> Vec<u8> {
    let observed = observed.to_string();
    let records = batch
        .iter()
        .map(|r| JsonLogRecord {
            time_unix_nano: r.time_nano.max(0).to_string(),
            observed_time_unix_nano: observed.clone(),
            severity_number: severity_number(r.level),
            severity_text: r.level.as_str(),
            event_name: &r.name,
            body: JsonString {
                string_value: r.text(),
            },
            attributes: json_kvs(attributes(r)),
        })
        .collect();
    let req = JsonRequest {
        resource_logs: [JsonResourceLogs {
            resource: JsonResource {
                attributes: json_kvs(resource(origin).into_iter()),
            },
            scope_logs: [JsonScopeLogs {
                scope: JsonScope {
                    name: "docker-events-exporter",
                    version: env!("CARGO_PKG_VERSION"),
                },
                log_records: records,
            }],
        }],
    };
    serde_json::to_vec(&req).unwrap_or_default()
}

fn json_kvs<'a>(it: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<JsonKv<'a>> {
    it.map(|(k, v)| JsonKv {
        key: k,
        value: JsonString {
            string_value: v.into(),
        },
    })
    .collect()
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonRequest<'a> {
    resource_logs: [JsonResourceLogs<'a>; 1],
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonResourceLogs<'a> {
    resource: JsonResource<'a>,
    scope_logs: [JsonScopeLogs<'a>; 1],
}

#[derive(serde::Serialize)]
struct JsonResource<'a> {
    attributes: Vec<JsonKv<'a>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonScopeLogs<'a> {
    scope: JsonScope,
    log_records: Vec<JsonLogRecord<'a>>,
}

#[derive(serde::Serialize)]
struct JsonScope {
    name: &'static str,
    version: &'static str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonLogRecord<'a> {
    time_unix_nano: String,
    observed_time_unix_nano: String,
    severity_number: i32,
    severity_text: &'static str,
    event_name: &'a str,
    body: JsonString<'a>,
    attributes: Vec<JsonKv<'a>>,
}

#[derive(serde::Serialize)]
struct JsonKv<'a> {
    key: &'a str,
    value: JsonString<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonString<'a> {
    string_value: std::borrow::Cow<'a, str>,
}

fn int_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum N {
        I(i64),
        S(String),
    }
    match <N as serde::Deserialize>::deserialize(d)? {
        N::I(i) => Ok(i),
        N::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// How much of a store's answer is kept for a log line.
const ANSWER_SHOWN: usize = 512;
/// The longest a `Retry-After` is waited for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

pub struct Otlp {
    client: reqwest::Client,
    url: String,
    json: bool,
    headers: Vec<(http::HeaderName, Secret)>,
    origin: Origin,
}

impl Otlp {
    pub fn new(
        url: String,
        json: bool,
        headers: Vec<(http::HeaderName, Secret)>,
        ca: Option<&std::path::Path>,
        timeout: Duration,
        origin: Origin,
    ) -> anyhow::Result<Self> {
        // reqwest is built without a bundled provider; ring is ours (a no-op if done).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder()
            .user_agent(concat!(
                "docker-events-exporter/",
                env!("CARGO_PKG_VERSION")
            ))
            .timeout(timeout);
        if let Some(ca) = ca {
            let pem =
                std::fs::read(ca).map_err(|e| anyhow::anyhow!("?ca={}: {e}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| anyhow::anyhow!("?ca={}: {e}", ca.display()))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        Ok(Self {
            client: b.build()?,
            url,
            json,
            headers,
            origin,
        })
    }

    pub async fn send(&mut self, batch: &[Record]) -> Result<(), SendError> {
        let observed = u64::try_from(crate::docker::now_nano()).unwrap_or(0);
        let (body, content_type) = if self.json {
            (
                request_json(&self.origin, batch, observed),
                "application/json",
            )
        } else {
            (
                prost::Message::encode_to_vec(&request(&self.origin, batch, observed)),
                "application/x-protobuf",
            )
        };
        let mut req = self
            .client
            .post(&self.url)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body);
        for (name, value) in &self.headers {
            req = req.header(name, value.expose());
        }
        let resp = req.send().await.map_err(|e| SendError::Retry {
            reason: if e.is_timeout() { "timeout" } else { "network" },
            after: None,
            detail: format!("{:#}", anyhow::Error::from(e)),
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let answer = resp.bytes().await.unwrap_or_default();
        if status.is_success() {
            let partial = if self.json {
                serde_json::from_slice::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| v.get("partialSuccess").cloned())
                    .and_then(|p| serde_json::from_value::<PartialSuccess>(p).ok())
            } else {
                <ExportLogsServiceResponse as prost::Message>::decode(answer.as_ref())
                    .ok()
                    .and_then(|r| r.partial_success)
            };
            return match partial {
                Some(p) if p.rejected_log_records > 0 => Err(SendError::Partial {
                    rejected: u64::try_from(p.rejected_log_records).unwrap_or(0),
                    detail: p.error_message,
                }),
                _ => Ok(()),
            };
        }
        let detail = format!("HTTP {status}: {}", shown(&answer));
        Err(match status.as_u16() {
            429 => SendError::Retry {
                reason: "throttled",
                after: retry_after,
                detail,
            },
            502..=504 => SendError::Retry {
                reason: "unavailable",
                after: retry_after,
                detail,
            },
            _ => SendError::Reject {
                reason: "rejected",
                detail,
            },
        })
    }
}

/// `Retry-After`: seconds or an HTTP date, at most [`MAX_RETRY_AFTER`].
fn retry_after(v: &str) -> Option<Duration> {
    let wait = match v.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(v)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The start of a store's answer, on one line.
fn shown(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(&answer[..answer.len().min(ANSWER_SHOWN)]);
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    one_line.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::event::Event;

    #[test]
    fn protobuf_and_json_carry_the_same_record() {
        let origin = Origin {
            engine: "vm".into(),
            host: "vm.example".into(),
            engine_id: "ID".into(),
        };
        let line = br#"{"Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{"exitCode":"2","name":"web"}},"scope":"local","time":7,"timeNano":7000000001}"#;
        let ev = Event::decode(line).expect("event");
        let batch = [Record::new(&origin, &ev, line)];
        let req = request(&origin, &batch, 9);
        let bytes = prost::Message::encode_to_vec(&req);
        let back = <ExportLogsServiceRequest as prost::Message>::decode(bytes.as_slice())
            .expect("decodes");
        let rec = &back.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.time_unix_nano, 7_000_000_001);
        assert_eq!(rec.observed_time_unix_nano, 9);
        assert_eq!(rec.event_name, "docker.container.die");
        assert_eq!(rec.severity_number, 13);
        assert_eq!(
            rec.body.as_ref().map(|b| b.string_value.as_bytes()),
            Some(&line[..])
        );
        let json: serde_json::Value =
            serde_json::from_slice(&request_json(&origin, &batch, 9)).expect("JSON");
        let jrec = &json["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(jrec["timeUnixNano"], "7000000001");
        assert_eq!(jrec["eventName"], "docker.container.die");
        assert_eq!(jrec["attributes"][0]["key"], "log.record.uid");
        assert_eq!(
            jrec["attributes"][0]["value"]["stringValue"],
            rec.attributes[0]
                .value
                .as_ref()
                .map_or("", |v| &v.string_value)
        );
        assert_eq!(
            json["resourceLogs"][0]["resource"]["attributes"][1]["value"]["stringValue"],
            "vm.example"
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("99999"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }
}
