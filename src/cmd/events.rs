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
            let url = super::client::base_url(settings, ask.url);
            from_exporter(&url, since, until, &filters).await
        }
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
    let (request, shown) =
        super::client::request(reqwest::Method::GET, url, "/api/v1/events", &query)?;
    let mut response = super::client::send(request, &shown).await?;
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
