//! The services `notify` reaches: their Apprise-style URLs parsed (with the secret parts
//! known, so the URL can be shown masked), the escape each one's markup needs, and the
//! requests each one's API takes. Pure: no I/O.

use std::fmt::Write as _;

use reqwest::Url;
use serde_json::{Value, json};

use super::super::delivery::{decoded, take_credentials};
use crate::secret::Secret;
use crate::rules::template::{Escape, escaped};

/// The URL forms, for error messages.
pub const FORMS: &str = "ntfy://HOST/TOPIC, gotify://HOST/TOKEN, discord://ID/TOKEN, slack://A/B/C, tgram://BOT_TOKEN/CHAT_ID, matrix://USER:TOKEN@HOST/#ROOM, teams://HOST/PATH?QUERY, pover://USER_KEY@APP_TOKEN, json://HOST/PATH (an s after the scheme, as in ntfys://, for HTTPS where the host is yours)";

/// What stands for a secret in a shown URL.
const MASK: &str = "****";

/// Colours of a Discord embed: a firing and a recovery.
const DISCORD_FIRING: u32 = 0x00E7_4C3C;
const DISCORD_RESOLVED: u32 = 0x002E_CC71;

/// One service's target, parsed from its URL.
#[derive(Debug)]
pub struct Target {
    pub service: Service,
    /// The URL as given, its secrets replaced by `****`: what logs and `--dry-run` show.
    pub masked: String,
}

#[derive(Debug)]
pub enum Service {
    Ntfy {
        origin: Url,
        topics: Vec<String>,
        auth: Option<(String, Secret)>,
        /// Sent as `X-Priority` unless `default`.
        priority: Option<&'static str>,
        /// From the URL; else `warning` for a firing, `white_check_mark` for a recovery.
        tags: Vec<String>,
    },
    Gotify {
        /// With the path prefix the server is under, ending in `/`.
        base: Url,
        token: Secret,
        priority: u8,
    },
    Discord {
        id: String,
        token: Secret,
        username: Option<String>,
    },
    Slack {
        /// `A/B/C` of `https://hooks.slack.com/services/A/B/C`.
        path: Secret,
        username: Option<String>,
    },
    Telegram {
        bot: Secret,
        chats: Vec<String>,
    },
    Matrix {
        origin: Url,
        token: Secret,
        /// Aliases (`#room:server`) and IDs (`!id:server`).
        rooms: Vec<String>,
    },
    Teams {
        /// Everything after the host: `/workflows/...?api-version=...&sig=...`.
        path_and_query: Secret,
        origin: Url,
    },
    Pushover {
        user: Secret,
        token: Secret,
        devices: Vec<String>,
        priority: Option<i8>,
    },
    Json {
        url: Url,
        auth: Option<(String, Secret)>,
    },
}

/// One message, rendered and escaped for its service.
#[derive(Debug)]
pub struct Message<'a> {
    pub title: &'a str,
    pub body: &'a str,
    /// A recovery (the rule's `resolve` matched) rather than a firing.
    pub resolved: bool,
}

/// One HTTP request to a service.
#[derive(Debug)]
pub struct Request {
    pub method: http::Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub basic_auth: Option<(String, Secret)>,
    pub body: Body,
}

#[derive(Debug)]
pub enum Body {
    Json(Value),
    Form(String),
}

impl Target {
    /// Parses a notify URL. Errors never repeat the URL, which may hold a secret.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("it is not a notify URL; use one of: {FORMS}"));
        };
        let (scheme, secure) = match scheme.to_ascii_lowercase().as_str() {
            s @ ("ntfys" | "gotifys" | "matrixs" | "jsons") => (s[..s.len() - 1].to_owned(), true),
            s => (s.to_owned(), false),
        };
        let mut secrets = Vec::new();
        let service = match scheme.as_str() {
            "ntfy" => ntfy(rest, secure, &mut secrets)?,
            "gotify" => gotify(rest, secure, &mut secrets)?,
            "discord" => discord(rest, &mut secrets)?,
            "slack" => slack(rest, &mut secrets)?,
            "tgram" => telegram(rest, &mut secrets)?,
            "matrix" => matrix(rest, secure, &mut secrets)?,
            "teams" => teams(rest, &mut secrets)?,
            "pover" => pushover(rest, &mut secrets)?,
            "json" => json_target(rest, secure, &mut secrets)?,
            other => {
                return Err(format!(
                    "unknown service {other:?}; use one of: {FORMS}"
                ));
            }
        };
        let mut masked = url.to_owned();
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            masked = masked.replace(s.as_str(), MASK);
        }
        Ok(Self { service, masked })
    }

    /// The service's name, for logs.
    pub fn name(&self) -> &'static str {
        match self.service {
            Service::Ntfy { .. } => "ntfy",
            Service::Gotify { .. } => "gotify",
            Service::Discord { .. } => "discord",
            Service::Slack { .. } => "slack",
            Service::Telegram { .. } => "telegram",
            Service::Matrix { .. } => "matrix",
            Service::Teams { .. } => "teams",
            Service::Pushover { .. } => "pushover",
            Service::Json { .. } => "json",
        }
    }

    /// How placeholders are escaped in this service's title and message: for the markup it
    /// reads, so that nothing an event carries becomes markup.
    pub fn escape(&self) -> Escape {
        match self.service {
            Service::Discord { .. } | Service::Teams { .. } => Escape::Markdown,
            Service::Slack { .. } => Escape::Mrkdwn,
            Service::Telegram { .. } => Escape::Html,
            Service::Ntfy { .. }
            | Service::Gotify { .. }
            | Service::Matrix { .. }
            | Service::Pushover { .. }
            | Service::Json { .. } => Escape::None,
        }
    }

    /// The longest title and message the service takes, in characters (past them it refuses
    /// the message); `None` for no limit worth keeping to.
    pub fn limits(&self) -> (Option<usize>, Option<usize>) {
        match self.service {
            Service::Discord { .. } => (Some(256), Some(4096)),
            // One text of 4096 holds both.
            Service::Telegram { .. } => (Some(256), Some(3800)),
            Service::Pushover { .. } => (Some(250), Some(1024)),
            _ => (None, None),
        }
    }

    /// The requests that send `m` (one per topic, chat or room), with the service's own
    /// scheme and host replaced by `base` where given (a proxy, or a test's server). A Matrix
    /// room is sent to by [`Target::matrix_send`] once [`Target::matrix_join`] has its ID.
    pub fn requests(&self, m: &Message<'_>, base: Option<&Url>) -> Vec<Request> {
        let at = |origin: &str, path: &str| join(base.map_or(origin, Url::as_str), path);
        let post = |url: String, body: Body| Request {
            method: http::Method::POST,
            url,
            headers: Vec::new(),
            basic_auth: None,
            body,
        };
        match &self.service {
            Service::Ntfy {
                origin,
                topics,
                auth,
                priority,
                tags,
            } => topics
                .iter()
                .map(|topic| {
                    let mut r = post(
                        at(origin.as_str(), ""),
                        Body::Json(json!({"topic": topic, "title": m.title, "message": m.body})),
                    );
                    if let Some(p) = priority {
                        r.headers.push(("X-Priority", (*p).to_owned()));
                    }
                    let tags = match (tags.is_empty(), m.resolved) {
                        (false, _) => tags.join(","),
                        (true, false) => "warning".to_owned(),
                        (true, true) => "white_check_mark".to_owned(),
                    };
                    r.headers.push(("X-Tags", tags));
                    r.basic_auth.clone_from(auth);
                    r
                })
                .collect(),
            Service::Gotify {
                base: server,
                token,
                priority,
            } => {
                let mut r = post(
                    at(server.as_str(), "message"),
                    Body::Json(json!({"priority": priority, "title": m.title, "message": m.body})),
                );
                r.headers.push(("X-Gotify-Key", token.expose().to_owned()));
                vec![r]
            }
            Service::Discord {
                id,
                token,
                username,
            } => {
                let color = if m.resolved {
                    DISCORD_RESOLVED
                } else {
                    DISCORD_FIRING
                };
                let mut body = json!({
                    "embeds": [{"title": m.title, "description": m.body, "color": color}],
                    // A name like "@everyone" pings no one.
                    "allowed_mentions": {"parse": []},
                });
                if let Some(u) = username {
                    body["username"] = json!(u);
                }
                vec![post(
                    at(
                        "https://discord.com",
                        &format!("api/webhooks/{id}/{}", token.expose()),
                    ),
                    Body::Json(body),
                )]
            }
            Service::Slack { path, username } => {
                let mut body = json!({"text": format!("*{}*\n{}", m.title, m.body)});
                if let Some(u) = username {
                    body["username"] = json!(u);
                }
                vec![post(
                    at(
                        "https://hooks.slack.com",
                        &format!("services/{}", path.expose()),
                    ),
                    Body::Json(body),
                )]
            }
            Service::Telegram { bot, chats } => chats
                .iter()
                .map(|chat| {
                    post(
                        at(
                            "https://api.telegram.org",
                            &format!("bot{}/sendMessage", bot.expose()),
                        ),
                        Body::Json(json!({
                            "chat_id": chat,
                            "text": format!("<b>{}</b>\n{}", m.title, m.body),
                            "parse_mode": "HTML",
                            "disable_web_page_preview": true,
                        })),
                    )
                })
                .collect(),
            // Joined first, then sent to: see matrix_join and matrix_send.
            Service::Matrix { .. } => Vec::new(),
            Service::Teams {
                path_and_query,
                origin,
            } => vec![post(
                at(origin.as_str(), path_and_query.expose()),
                Body::Json(json!({
                    "type": "message",
                    "attachments": [{
                        "contentType": "application/vnd.microsoft.card.adaptive",
                        "content": {
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "type": "AdaptiveCard",
                            "version": "1.4",
                            "body": [
                                {"type": "TextBlock", "text": m.title, "weight": "Bolder", "size": "Medium", "wrap": true,
                                 "color": if m.resolved { "Good" } else { "Attention" }},
                                {"type": "TextBlock", "text": m.body, "wrap": true},
                            ],
                        },
                    }],
                })),
            )],
            Service::Pushover {
                user,
                token,
                devices,
                priority,
            } => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                form.append_pair("token", token.expose())
                    .append_pair("user", user.expose())
                    .append_pair("title", m.title)
                    .append_pair("message", m.body);
                if !devices.is_empty() {
                    form.append_pair("device", &devices.join(","));
                }
                if let Some(p) = priority {
                    form.append_pair("priority", &p.to_string());
                }
                vec![post(
                    at("https://api.pushover.net", "1/messages.json"),
                    Body::Form(form.finish()),
                )]
            }
            Service::Json { url, auth } => {
                let origin = url.origin().ascii_serialization();
                let mut r = post(
                    at(&origin, &path_and_query(url)),
                    Body::Json(json!({
                        "version": "1.0",
                        "title": m.title,
                        "message": m.body,
                        "attachments": [],
                        "type": if m.resolved { "success" } else { "failure" },
                    })),
                );
                r.basic_auth.clone_from(auth);
                vec![r]
            }
        }
    }

    /// For a Matrix target: a join of each room (the answer has the room's ID), in order.
    pub fn matrix_join(&self, base: Option<&Url>) -> Vec<Request> {
        let Service::Matrix {
            origin,
            token,
            rooms,
        } = &self.service
        else {
            return Vec::new();
        };
        rooms
            .iter()
            .map(|room| Request {
                method: http::Method::POST,
                url: join(
                    base.map_or(origin.as_str(), Url::as_str),
                    &format!("_matrix/client/v3/join/{}", path_segment(room)),
                ),
                headers: vec![("Authorization", format!("Bearer {}", token.expose()))],
                basic_auth: None,
                body: Body::Json(json!({})),
            })
            .collect()
    }

    /// For a Matrix target: the message to the room `room_id`, under the transaction `txn`
    /// (a retry with the same one is not a second message).
    pub fn matrix_send(
        &self,
        m: &Message<'_>,
        room_id: &str,
        txn: &str,
        base: Option<&Url>,
    ) -> Option<Request> {
        let Service::Matrix { origin, token, .. } = &self.service else {
            return None;
        };
        Some(Request {
            method: http::Method::PUT,
            url: join(
                base.map_or(origin.as_str(), Url::as_str),
                &format!(
                    "_matrix/client/v3/rooms/{}/send/m.room.message/{}",
                    path_segment(room_id),
                    path_segment(txn)
                ),
            ),
            headers: vec![("Authorization", format!("Bearer {}", token.expose()))],
            basic_auth: None,
            body: Body::Json(json!({
                "msgtype": "m.text",
                "body": format!("# {}\r\n{}", m.title, m.body),
            })),
        })
    }
}

/// `s` cut to at most `max` characters, ending in `…` when cut, and never inside an escape
/// (an entity like `&amp;`, or a Markdown backslash).
pub fn fit(s: &mut String, max: usize) {
    if s.chars().nth(max).is_none() {
        return;
    }
    // Room for the `…`.
    let end = s
        .char_indices()
        .nth(max.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    let mut cut = &s[..end];
    if let Some(amp) = cut.rfind('&')
        && !cut[amp..].contains(';')
        && cut.len() - amp <= 10
    {
        cut = &cut[..amp];
    }
    let cut = cut.trim_end_matches('\\').len();
    s.truncate(cut);
    s.push('…');
}

/// `origin` (with or without a path, with or without its `/`) and `path` (without its `/`).
fn join(origin: &str, path: &str) -> String {
    let mut url = origin.trim_end_matches('/').to_owned();
    url.push('/');
    url.push_str(path.trim_start_matches('/'));
    url
}

/// A URL's path and query: what follows its host.
fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// `s` percent-encoded for one path segment, as `|urlencode` does (and Python's
/// `quote(s, safe='')`, which Apprise uses).
fn path_segment(s: &str) -> String {
    escaped(s, Escape::Url)
}

/// The query pairs of `rest`, and `rest` without its query.
fn split_query(rest: &str) -> (&str, Vec<(String, String)>) {
    match rest.split_once('?') {
        Some((head, q)) => (
            head,
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ),
        None => (rest, Vec::new()),
    }
}

fn query<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// A URL with a real host (a self-hosted service's): parsed as HTTP or HTTPS.
fn host_url(rest: &str, secure: bool, form: &str) -> Result<Url, String> {
    let scheme = if secure { "https" } else { "http" };
    let url = Url::parse(&format!("{scheme}://{rest}"))
        .map_err(|e| format!("its host part is not valid ({e}); the form is {form}"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("it has no host; the form is {form}"));
    }
    Ok(url)
}

/// Takes a URL's user and password out of it ([`take_credentials`]); its password, as the URL
/// spells it, is a secret to mask.
fn credentials(url: &mut Url, secrets: &mut Vec<String>) -> Option<(String, Secret)> {
    secrets.extend(url.password().map(str::to_owned));
    take_credentials(url)
}

/// The URL's scheme, host and port only.
fn origin_of(url: &Url) -> Url {
    let mut o = url.clone();
    o.set_path("/");
    o.set_query(None);
    o.set_fragment(None);
    // Clearing a valid URL's credentials cannot fail for an http(s) URL with a host.
    let _ = o.set_username("");
    let _ = o.set_password(None);
    o
}

fn segments(url: &Url) -> Vec<String> {
    url.path_segments()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .map(decoded)
        .collect()
}

fn ntfy(rest: &str, secure: bool, secrets: &mut Vec<String>) -> Result<Service, String> {
    const FORM: &str = "ntfy://[USER:PASSWORD@]HOST[:PORT]/TOPIC[?priority=high&tags=a,b]";
    let (head, q) = split_query(rest);
    let mut url = host_url(head, secure, FORM)?;
    let auth = credentials(&mut url, secrets);
    let mut topics = segments(&url);
    if topics.is_empty() && url.port().is_some() {
        return Err(format!("it names no topic; the form is {FORM}"));
    }
    let origin = if topics.is_empty() {
        // `ntfy://TOPIC`: the topic on ntfy.sh, as Apprise reads it.
        topics.push(url.host_str().unwrap_or_default().to_owned());
        Url::parse("https://ntfy.sh/").map_err(|e| e.to_string())?
    } else {
        origin_of(&url)
    };
    let priority = match query(&q, "priority") {
        None => None,
        Some(p) => match p.to_ascii_lowercase().as_str() {
            "1" | "min" => Some("min"),
            "2" | "low" => Some("low"),
            "3" | "default" => None,
            "4" | "high" => Some("high"),
            "5" | "max" => Some("max"),
            _ => {
                return Err(format!(
                    "its priority {p:?} is not one of min, low, default, high, max (or 1 to 5)"
                ));
            }
        },
    };
    // Sorted and once each, as Apprise sends them.
    let tags: std::collections::BTreeSet<String> = query(&q, "tags")
        .into_iter()
        .flat_map(|t| t.split([',', ' ']))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let tags = tags.into_iter().collect();
    Ok(Service::Ntfy {
        auth,
        origin,
        topics,
        priority,
        tags,
    })
}

fn gotify(rest: &str, secure: bool, secrets: &mut Vec<String>) -> Result<Service, String> {
    const FORM: &str = "gotify://HOST[:PORT][/PATH]/TOKEN[?priority=high]";
    let (head, q) = split_query(rest);
    let url = host_url(head, secure, FORM)?;
    let mut path = segments(&url);
    let Some(token) = path.pop() else {
        return Err(format!("it has no token; the form is {FORM}"));
    };
    secrets.push(token.clone());
    let priority = match query(&q, "priority") {
        None => 5,
        Some(p) => match p.to_ascii_lowercase().as_str() {
            "low" => 0,
            "moderate" => 3,
            "normal" => 5,
            "high" => 8,
            "emergency" => 10,
            n => match n.parse::<u8>() {
                Ok(n) if n <= 10 => n,
                _ => {
                    return Err(format!(
                        "its priority {p:?} is not one of low, moderate, normal, high, emergency (or 0 to 10)"
                    ));
                }
            },
        },
    };
    let mut base = origin_of(&url);
    let mut prefix = String::from("/");
    for s in &path {
        let _ = write!(prefix, "{}/", path_segment(s));
    }
    base.set_path(&prefix);
    Ok(Service::Gotify {
        base,
        token: Secret::new(token),
        priority,
    })
}

/// `[NAME@]A/B/...`: the optional name and the path's parts.
fn name_and_parts(rest: &str) -> (Option<String>, Vec<String>) {
    let (head, _) = split_query(rest);
    let (name, path) = match head.split_once('@') {
        Some((n, p)) => (Some(n.to_owned()).filter(|n| !n.is_empty()), p),
        None => (None, head),
    };
    let parts = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decoded)
        .collect();
    (name, parts)
}

fn discord(rest: &str, secrets: &mut Vec<String>) -> Result<Service, String> {
    let (username, parts) = name_and_parts(rest);
    let [id, token] = <[String; 2]>::try_from(parts)
        .map_err(|_| "the form is discord://[BOTNAME@]WEBHOOK_ID/WEBHOOK_TOKEN".to_owned())?;
    secrets.push(token.clone());
    Ok(Service::Discord {
        id,
        token: Secret::new(token),
        username,
    })
}

fn slack(rest: &str, secrets: &mut Vec<String>) -> Result<Service, String> {
    let (username, parts) = name_and_parts(rest);
    let [a, b, c] = <[String; 3]>::try_from(parts).map_err(|_| {
        "the form is slack://[BOTNAME@]TOKEN_A/TOKEN_B/TOKEN_C (the end of an incoming webhook's https://hooks.slack.com/services/TOKEN_A/TOKEN_B/TOKEN_C)".to_owned()
    })?;
    secrets.push(b.clone());
    secrets.push(c.clone());
    Ok(Service::Slack {
        path: Secret::new(format!("{a}/{b}/{c}")),
        username,
    })
}

fn telegram(rest: &str, secrets: &mut Vec<String>) -> Result<Service, String> {
    const FORM: &str = "tgram://BOT_TOKEN/CHAT_ID[/CHAT_ID...]";
    let (_, mut parts) = name_and_parts(rest);
    if parts.len() < 2 {
        return Err(format!("the form is {FORM}"));
    }
    let bot = parts.remove(0);
    if !bot.contains(':') {
        return Err(format!(
            "its bot token has no \":\" (BotFather's tokens look like 123456:ABC-DEF...); the form is {FORM}"
        ));
    }
    secrets.push(bot.clone());
    Ok(Service::Telegram {
        bot: Secret::new(bot),
        chats: parts,
    })
}

fn matrix(rest: &str, secure: bool, secrets: &mut Vec<String>) -> Result<Service, String> {
    const FORM: &str = "matrix://USER:TOKEN@HOST[:PORT]/#ROOM (an access token; rooms as #alias, #alias:server or !id:server)";
    let (head, q) = split_query(rest);
    let mut url = host_url(head, secure, FORM)?;
    let Some((_, token)) = credentials(&mut url, secrets) else {
        return Err(format!("it has no access token; the form is {FORM}"));
    };
    let server = url.host_str().unwrap_or_default().to_owned();
    let mut names = segments(&url);
    names.extend(url.fragment().map(decoded));
    names.extend(
        query(&q, "to")
            .into_iter()
            .flat_map(|t| t.split(','))
            .map(str::to_owned),
    );
    let rooms: Vec<String> = names
        .iter()
        .flat_map(|n| n.split('#'))
        .filter(|n| !n.is_empty())
        .map(|n| {
            let (sigil, name) = match n.strip_prefix('!') {
                Some(id) => ('!', id),
                None => ('#', n),
            };
            if name.contains(':') {
                format!("{sigil}{name}")
            } else {
                format!("{sigil}{name}:{server}")
            }
        })
        .collect();
    if rooms.is_empty() {
        return Err(format!("it names no room; the form is {FORM}"));
    }
    Ok(Service::Matrix {
        origin: origin_of(&url),
        token,
        rooms,
    })
}

fn teams(rest: &str, secrets: &mut Vec<String>) -> Result<Service, String> {
    const FORM: &str = "teams://HOST/PATH?QUERY (a Teams workflow's webhook URL with https:// replaced by teams://)";
    let url = host_url(rest, true, FORM)?;
    let Some(sig) = url
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .map(|(_, v)| v.into_owned())
    else {
        return Err(format!("it has no sig= signature; the form is {FORM}"));
    };
    // Masked as written in the URL (escaped) and as decoded.
    if let Some(raw) = url.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("sig="))
            .map(str::to_owned)
    }) {
        secrets.push(raw);
    }
    secrets.push(sig);
    Ok(Service::Teams {
        path_and_query: Secret::new(path_and_query(&url)),
        origin: origin_of(&url),
    })
}

fn pushover(rest: &str, secrets: &mut Vec<String>) -> Result<Service, String> {
    const FORM: &str = "pover://USER_KEY@APP_TOKEN[/DEVICE...][?priority=-2..1]";
    let (head, q) = split_query(rest);
    let Some((user, path)) = head.split_once('@') else {
        return Err(format!("the form is {FORM}"));
    };
    let mut parts = path.split('/').filter(|s| !s.is_empty()).map(str::to_owned);
    let (Some(token), false) = (parts.next(), user.is_empty()) else {
        return Err(format!("the form is {FORM}"));
    };
    let priority = match query(&q, "priority") {
        None => None,
        Some(p) => match p.parse::<i8>() {
            Ok(n @ -2..=1) => Some(n),
            _ => {
                return Err(format!(
                    "its priority {p:?} is not -2, -1, 0 or 1 (emergency priority 2 needs retry and expire, which notify does not send)"
                ));
            }
        },
    };
    secrets.push(user.to_owned());
    secrets.push(token.clone());
    Ok(Service::Pushover {
        user: Secret::new(user.to_owned()),
        token: Secret::new(token),
        devices: parts.collect(),
        priority,
    })
}

fn json_target(rest: &str, secure: bool, secrets: &mut Vec<String>) -> Result<Service, String> {
    const FORM: &str = "json://[USER:PASSWORD@]HOST[:PORT]/PATH";
    let mut url = host_url(rest, secure, FORM)?;
    let auth = credentials(&mut url, secrets);
    Ok(Service::Json { url, auth })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRING: Message<'static> = Message {
        title: "t <1>",
        body: "b & c",
        resolved: false,
    };

    fn one(url: &str, base: Option<&str>) -> Request {
        let base = base.map(|b| Url::parse(b).expect("base"));
        let mut r = Target::parse(url)
            .expect("parses")
            .requests(&FIRING, base.as_ref());
        assert_eq!(r.len(), 1, "{url}");
        r.remove(0)
    }

    fn json_body(r: &Request) -> &Value {
        match &r.body {
            Body::Json(v) => v,
            Body::Form(f) => panic!("a form: {f}"),
        }
    }

    #[test]
    fn each_url_form_is_masked_where_its_secret_is() {
        for (url, masked) in [
            ("ntfy://u:pw@ntfy.local/alerts", "ntfy://u:****@ntfy.local/alerts"),
            ("gotifys://push.local/sub/AbCdEf", "gotifys://push.local/sub/****"),
            ("discord://1234/s3cr3t-t0ken", "discord://1234/****"),
            ("slack://T0001/B0002/XyZ123", "slack://T0001/****/****"),
            ("tgram://123456:ABC-def/-100987", "tgram://****/-100987"),
            (
                "matrix://bot:syt_tok@matrix.local/#ops",
                "matrix://bot:****@matrix.local/#ops",
            ),
            (
                "teams://x.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=S%2Fig",
                "teams://x.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=****",
            ),
            ("pover://uKey@aToken", "pover://****@****"),
            ("json://u:pw@hooks.local/in", "json://u:****@hooks.local/in"),
        ] {
            assert_eq!(Target::parse(url).expect(url).masked, masked);
        }
    }

    #[test]
    fn bad_urls_say_what_the_form_is_without_repeating_the_url() {
        for (url, want) in [
            ("ntfy.local/alerts", "it is not a notify URL; use one of: "),
            ("irc://secret@h/x", "unknown service \"irc\"; use one of: "),
            ("discord://only-id", "the form is discord://[BOTNAME@]WEBHOOK_ID/WEBHOOK_TOKEN"),
            ("tgram://nocolon/1", "its bot token has no \":\""),
            ("matrix://bot@m.local/#r", "it has no access token; the form is matrix://"),
            ("matrix://bot:t@m.local/", "it names no room"),
            ("gotify://h.local", "it has no token"),
            ("ntfy://h/t?priority=urgent", "its priority \"urgent\" is not one of min"),
            ("ntfy://h:8080", "it names no topic"),
            ("teams://h/p?x=1", "it has no sig= signature"),
            ("pover://tokenonly", "the form is pover://"),
        ] {
            let e = Target::parse(url).expect_err(url);
            assert!(e.starts_with(want) || e.contains(want), "{url}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn services_get_their_documented_requests() {
        let r = one("ntfy://ntfy.local:8080/alerts?priority=4&tags=b,a,b", None);
        assert_eq!(r.url, "http://ntfy.local:8080/");
        assert_eq!(
            json_body(&r),
            &json!({"topic": "alerts", "title": "t <1>", "message": "b & c"})
        );
        assert_eq!(r.headers, [("X-Priority", "high".into()), ("X-Tags", "a,b".into())]);

        let r = one("gotify://g.local/sub/TOKEN?priority=high", None);
        assert_eq!(r.url, "http://g.local/sub/message");
        assert_eq!(r.headers, [("X-Gotify-Key", "TOKEN".into())]);
        assert_eq!(json_body(&r)["priority"], 8);

        let r = one("discord://bot@1234/TOK", Some("http://127.0.0.1:9"));
        assert_eq!(r.url, "http://127.0.0.1:9/api/webhooks/1234/TOK");
        assert_eq!(json_body(&r)["embeds"][0]["color"], DISCORD_FIRING);
        assert_eq!(json_body(&r)["username"], "bot");

        let r = one("slack://T1/B2/C3", None);
        assert_eq!(r.url, "https://hooks.slack.com/services/T1/B2/C3");
        assert_eq!(json_body(&r)["text"], "*t <1>*\nb & c");

        let r = one("tgram://1:AB/-100", None);
        assert_eq!(r.url, "https://api.telegram.org/bot1:AB/sendMessage");
        assert_eq!(json_body(&r)["parse_mode"], "HTML");

        let r = one("teams://h.example/workflows/w/x?sig=S", Some("http://127.0.0.1:9/"));
        assert_eq!(r.url, "http://127.0.0.1:9/workflows/w/x?sig=S");

        let r = one("pover://U@T/phone?priority=1", None);
        assert_eq!(r.url, "https://api.pushover.net/1/messages.json");
        assert!(
            matches!(&r.body, Body::Form(f) if f == "token=T&user=U&title=t+%3C1%3E&message=b+%26+c&device=phone&priority=1"),
            "{:?}",
            r.body
        );

        let r = one("jsons://u:p%40ss@h.local:8443/in/hook", None);
        assert_eq!(r.url, "https://h.local:8443/in/hook");
        assert_eq!(
            r.basic_auth.as_ref().map(|(u, p)| (u.as_str(), p.expose())),
            Some(("u", "p@ss"))
        );
        assert_eq!(json_body(&r)["type"], "failure");
    }

    #[test]
    fn long_text_is_cut_to_the_limit_outside_escapes() {
        let cut = |s: &str, max| {
            let mut s = s.to_owned();
            fit(&mut s, max);
            s
        };
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("ééééé", 3), "éé…");
        assert_eq!(cut("ab &amp; cd", 6), "ab …");
        assert_eq!(cut(r"ab\_cd", 4), "ab…");
        assert_eq!(cut("exactly10!", 10), "exactly10!");
    }

    #[test]
    fn matrix_joins_the_room_then_puts_the_message() {
        let t = Target::parse("matrix://bot:TOK@m.local:8008/#ops").expect("parses");
        let joins = t.matrix_join(None);
        assert_eq!(joins.len(), 1);
        assert_eq!(
            joins[0].url,
            "http://m.local:8008/_matrix/client/v3/join/%23ops%3Am.local"
        );
        let send = t.matrix_send(&FIRING, "!r:m.local", "t1", None).expect("matrix");
        assert_eq!(send.method, http::Method::PUT);
        assert_eq!(
            send.url,
            "http://m.local:8008/_matrix/client/v3/rooms/%21r%3Am.local/send/m.room.message/t1"
        );
        assert_eq!(json_body(&send)["body"], "# t <1>\r\nb & c");
        assert_eq!(send.headers, [("Authorization", "Bearer TOK".into())]);
    }
}
