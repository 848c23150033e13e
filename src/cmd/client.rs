//! Asking a running exporter's API (the `events` and `mute` commands): where it is, basic auth
//! from the URL, and its errors as one line.

use anyhow::Context as _;

use crate::settings::Settings;

/// The exporter at `url` (user:password@ in it for basic auth), else the one this host runs,
/// from `--web.listen-address` (and TLS from its web config).
pub fn base_url(settings: &Settings, url: Option<&str>) -> String {
    if let Some(u) = url {
        return u.trim_end_matches('/').to_owned();
    }
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
pub fn masked(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => url.to_owned(),
    }
}

/// A request of `method` to `base` + `path` with `query`, its basic auth from the URL's user
/// and password sent as a header rather than in the URL; and the URL as errors show it.
pub fn request(
    method: reqwest::Method,
    base: &str,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<(reqwest::RequestBuilder, String)> {
    let mut endpoint = reqwest::Url::parse(&format!("{base}{path}"))
        .with_context(|| format!("--url {:?}: not a URL", masked(base)))?;
    if !query.is_empty() {
        endpoint.query_pairs_mut().extend_pairs(query);
    }
    let shown = masked(endpoint.as_str());
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
    let mut request = client.request(method, endpoint);
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, password);
    }
    Ok((request, shown))
}

/// Sends `request` to the exporter (`shown` in errors): its answer if it succeeded, else an
/// error with the API's message.
pub async fn send(
    request: reqwest::RequestBuilder,
    shown: &str,
) -> anyhow::Result<reqwest::Response> {
    let response = request
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
    Ok(response)
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
