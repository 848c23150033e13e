//! `healthcheck`: asks a running exporter's `/-/healthy` and exits 0 if it answers 200, 1 if
//! not: the image's `HEALTHCHECK`, where there is no curl.

use std::time::Duration;

use super::client;
use crate::settings::Settings;

/// How long the exporter may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

pub async fn run(settings: &Settings, url: Option<&str>) -> anyhow::Result<()> {
    let base = client::base_url(settings, url);
    let (request, shown) = client::request(reqwest::Method::GET, &base, "/-/healthy", &[])?;
    match tokio::time::timeout(TIMEOUT, client::send(request, &shown)).await {
        Ok(answer) => answer.map(drop),
        Err(_) => anyhow::bail!("{shown} did not answer within {TIMEOUT:?}"),
    }
}
