//! `mute`: make a mute on a running exporter (as `amtool silence add` makes a silence), list
//! them (`mute list`), or end one (`mute expire ID`), through its `/api/v1/mutes`.

use std::time::Duration;

use anyhow::Context as _;

use super::client;
use crate::actions::mutes::Matcher;
use crate::settings::Settings;

/// What to do.
pub enum Ask<'a> {
    Add {
        duration: &'a str,
        matchers: &'a [String],
        comment: Option<&'a str>,
        created_by: Option<&'a str>,
    },
    List,
    Expire {
        id: &'a str,
    },
}

pub async fn run(settings: &Settings, ask: &Ask<'_>, url: Option<&str>) -> anyhow::Result<()> {
    let base = client::base_url(settings, url);
    match ask {
        Ask::Add {
            duration,
            matchers,
            comment,
            created_by,
        } => {
            let body = body(duration, matchers, *comment, *created_by)?;
            let (request, shown) =
                client::request(reqwest::Method::POST, &base, "/api/v1/mutes", &[])?;
            let request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
            let answer: serde_json::Value =
                read_json(client::send(request, &shown).await?, &shown).await?;
            let id = answer["muteID"].as_str().unwrap_or_default();
            println!("{id}");
        }
        Ask::List => {
            let (request, shown) =
                client::request(reqwest::Method::GET, &base, "/api/v1/mutes", &[])?;
            let mutes: Vec<serde_json::Value> =
                read_json(client::send(request, &shown).await?, &shown).await?;
            print!("{}", table(&mutes));
        }
        Ask::Expire { id } => {
            let path = format!("/api/v1/mutes/{id}");
            let (request, shown) = client::request(reqwest::Method::DELETE, &base, &path, &[])?;
            client::send(request, &shown).await?;
        }
    }
    Ok(())
}

/// The answer's JSON.
async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    shown: &str,
) -> anyhow::Result<T> {
    let body = response
        .bytes()
        .await
        .with_context(|| format!("reading the answer of {shown}"))?;
    serde_json::from_slice(&body)
        .with_context(|| format!("the answer of {shown} is not what an exporter answers"))
}

/// The body of `POST /api/v1/mutes`: from now for `duration`, with `matchers` parsed.
fn body(
    duration: &str,
    matchers: &[String],
    comment: Option<&str>,
    created_by: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let length = humantime::parse_duration(duration)
        .with_context(|| format!("--for {duration:?}: use a duration like 30m or 2h"))?;
    if length < Duration::from_secs(1) {
        anyhow::bail!("--for {duration:?}: a mute lasts at least 1s");
    }
    if matchers.is_empty() {
        anyhow::bail!(
            "mute needs at least one --match, e.g. --match name=web-*; or mute list, mute expire ID"
        );
    }
    let matchers = matchers
        .iter()
        .map(|m| parse_matcher(m))
        .collect::<anyhow::Result<Vec<Matcher>>>()?;
    let now = crate::docker::now_nano();
    let ends = now.saturating_add(i64::try_from(length.as_nanos()).unwrap_or(i64::MAX));
    let ends_at = crate::docker::format_rfc3339_nano(ends)
        .with_context(|| format!("--for {duration:?}: too long"))?;
    let created_by = created_by
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    Ok(serde_json::json!({
        "matchers": matchers,
        "endsAt": ends_at,
        "createdBy": created_by,
        "comment": comment.unwrap_or_default(),
    }))
}

/// `NAME=VALUE` (a value with `*` or `?` is a glob), `NAME!=VALUE`, `NAME=~REGEX`,
/// `NAME!~REGEX`.
fn parse_matcher(text: &str) -> anyhow::Result<Matcher> {
    let bad = || {
        anyhow::anyhow!(
            "--match {text:?}: expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX, NAME one of: {}",
            crate::actions::mutes::MATCHER_NAMES
        )
    };
    let (name, op, value) = ["!~", "=~", "!=", "="]
        .iter()
        .filter_map(|op| text.split_once(op).map(|(n, v)| (n, *op, v)))
        .min_by_key(|(n, _, _)| n.len())
        .ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    let glob = matches!(op, "=" | "!=") && value.contains(['*', '?']);
    let value = if glob {
        value
            .chars()
            .map(|c| match c {
                '*' => ".*".to_owned(),
                '?' => ".".to_owned(),
                c => regex::escape(&c.to_string()),
            })
            .collect()
    } else {
        value.to_owned()
    };
    Ok(Matcher {
        name: name.to_owned(),
        value,
        is_regex: glob || op.ends_with('~'),
        is_equal: !op.starts_with('!'),
    })
}

/// The mutes as a table: ID, state, end, matchers, who, comment.
fn table(mutes: &[serde_json::Value]) -> String {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let mut rows = vec![[
        "ID".to_owned(),
        "STATE".to_owned(),
        "ENDS".to_owned(),
        "MATCHERS".to_owned(),
        "BY".to_owned(),
        "COMMENT".to_owned(),
    ]];
    for m in mutes {
        let matchers: Vec<String> = serde_json::from_value::<Vec<Matcher>>(m["matchers"].clone())
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect();
        rows.push([
            s(&m["id"]),
            s(&m["status"]["state"]),
            s(&m["endsAt"]),
            matchers.join(","),
            s(&m["createdBy"]),
            s(&m["comment"]),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_are_read_as_amtool_writes_them_and_globs_become_regexes() {
        let m = |t: &str| {
            let m = parse_matcher(t).expect("parses");
            (m.name, m.value, m.is_regex, m.is_equal)
        };
        assert_eq!(
            m("name=web-*"),
            ("name".into(), "web\\-.*".into(), true, true)
        );
        assert_eq!(
            m("name=web.1"),
            ("name".into(), "web.1".into(), false, true)
        );
        assert_eq!(
            m("engine!=h1"),
            ("engine".into(), "h1".into(), false, false)
        );
        assert_eq!(
            m("rule=~crash.*"),
            ("rule".into(), "crash.*".into(), true, true)
        );
        assert_eq!(
            m("label_tier!~db|cache"),
            ("label_tier".into(), "db|cache".into(), true, false)
        );
        assert_eq!(
            m("label_a=b=c"),
            ("label_a".into(), "b=c".into(), false, true)
        );
        assert_eq!(
            parse_matcher("web").expect_err("refused").to_string(),
            "--match \"web\": expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX, NAME one of: name, compose_project, compose_service, swarm_service, engine, rule, label_<KEY>"
        );
        assert_eq!(
            body("soon", &["name=web".into()], None, None)
                .expect_err("refused")
                .to_string(),
            "--for \"soon\": use a duration like 30m or 2h"
        );
        assert_eq!(
            body("30m", &[], None, None)
                .expect_err("refused")
                .to_string(),
            "mute needs at least one --match, e.g. --match name=web-*; or mute list, mute expire ID"
        );
    }
}
