//! `events`: the history's events, printed as `docker events --format '{{json .}}'` prints
//! them: asked of a running exporter (`/api/v1/events`), or read from `--history.dir`.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::history::filter::parse_time;
use crate::history::{Filters, disk};
use crate::settings::Settings;

/// What to print.
pub struct Ask<'a> {
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub filters: &'a [String],
    pub url: Option<&'a str>,
}

pub async fn run(settings: &Settings, ask: &Ask<'_>) -> anyhow::Result<()> {
    let now = crate::docker::now_nano();
    let since = ask
        .since
        .map(|s| parse_time("--since", s, now))
        .transpose()?;
    let until = ask
        .until
        .map(|s| parse_time("--until", s, now))
        .transpose()?;
    let filters = Filters::from_args(ask.filters)?;
    match &settings.history.dir {
        Some(dir) => {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || from_dir(&dir, since, until, &filters)).await?
        }
        None => {
            let url = match ask.url {
                Some(u) => u.trim_end_matches('/').to_owned(),
                None => local_url(settings),
            };
            from_exporter(&url, since, until, &filters).await
        }
    }
}

/// The exporter this host runs, from `--web.listen-address` (and TLS from its web config).
fn local_url(settings: &Settings) -> String {
    let addr = &settings.web.listen_address;
    let (host, port) = addr.rsplit_once(':').unwrap_or(("", addr));
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1",
        "[::]" => "[::1]",
        h => h,
    };
    let scheme = if settings.web.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}:{port}")
}

/// The URL with its password, if any, as `***`: fit for an error message.
fn masked(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => url.to_owned(),
    }
}

async fn from_exporter(
    url: &str,
    since: Option<i64>,
    until: Option<i64>,
    filters: &Filters,
) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(t) = since {
        query.push(("since", crate::docker::format_since(t)));
    }
    if let Some(t) = until {
        query.push(("until", crate::docker::format_since(t)));
    }
    if !filters.is_empty() {
        query.push(("filters", filters.to_json()));
    }
    let mut endpoint = reqwest::Url::parse(&format!("{url}/api/v1/events"))
        .with_context(|| format!("--url {:?}: not a URL", masked(url)))?;
    if !query.is_empty() {
        endpoint.query_pairs_mut().extend_pairs(&query);
    }
    let shown = masked(endpoint.as_str());
    // Basic auth from the URL's user and password, sent as a header rather than in the URL.
    let credentials = (!endpoint.username().is_empty()).then(|| {
        let user = endpoint.username().to_owned();
        let password = endpoint.password().map(str::to_owned);
        let _ = endpoint.set_username("");
        let _ = endpoint.set_password(None);
        (user, password)
    });
    let client = reqwest::Client::builder()
        .build()
        .context("making an HTTP client")?;
    let mut request = client.get(endpoint.clone());
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, password);
    }
    let mut response = request
        .send()
        .await
        .with_context(|| format!("asking {shown}; is the exporter running there? (--url)"))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or(body);
        anyhow::bail!("{shown} answered {status}: {}", message.trim());
    }
    let truncated = response
        .headers()
        .get("x-events-truncated")
        .is_some_and(|v| v == "true");
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("reading the answer of {shown}"))?
    {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    if truncated {
        eprintln!(
            "docker-events-exporter: the answer stops at {} events; ask again with --since the last one's time for the rest",
            crate::history::MAX_ANSWER_EVENTS
        );
    }
    Ok(())
}

/// Reads the segments of `dir` (one engine's), or of each engine's folder in it.
fn from_dir(
    dir: &Path,
    since: Option<i64>,
    until: Option<i64>,
    filters: &Filters,
) -> anyhow::Result<()> {
    if !dir.is_dir() {
        anyhow::bail!("--history.dir {}: no such folder", dir.display());
    }
    let since = since.unwrap_or(i64::MIN);
    let until = until.unwrap_or(i64::MAX);
    let mut folders: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("--history.dir {}: cannot list it", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    folders.sort();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed: Option<std::io::Error> = None;
    let wanted = |engine: &str, ev: &crate::docker::event::Event| {
        (since..=until).contains(&ev.time_nano) && filters.matches(engine, ev)
    };
    let mut print = |line: &[u8]| {
        if failed.is_none()
            && let Err(e) = out
                .write_all(&crate::history::cli_line(line))
                .and_then(|()| out.write_all(b"\n"))
        {
            failed = Some(e);
        }
    };
    if folders.is_empty() {
        disk::read(dir, since, |ev, line| {
            if wanted("", ev) {
                print(line);
            }
            true
        })?;
    } else {
        // Several engines' folders: their events merged by time.
        let mut all: Vec<(i64, Vec<u8>)> = Vec::new();
        for (engine, folder) in &folders {
            disk::read(folder, since, |ev, line| {
                if wanted(engine, ev) {
                    all.push((ev.time_nano, line.to_vec()));
                }
                true
            })?;
        }
        all.sort_by_key(|(t, _)| *t);
        for (_, line) in &all {
            print(line);
        }
    }
    if let Some(e) = failed {
        return Err(e).context("writing to standard output");
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        assert_eq!(
            masked("http://me:s3cret@127.0.0.1:10050/api/v1/events"),
            "http://me:***@127.0.0.1:10050/api/v1/events"
        );
    }
}
