//! The docker CLI's contexts, read as the CLI reads them: the current one from `config.json`
//! (`currentContext`) in `$DOCKER_CONFIG` or `~/.docker`, each one's endpoint from
//! `contexts/meta/<sha256 of its name>/meta.json`, and its TLS material from
//! `contexts/tls/<sha256 of its name>/docker/`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The context that is no context: the engine given by `DOCKER_HOST`, else the default socket.
pub const DEFAULT: &str = "default";

/// Where a context's engine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEndpoint {
    /// As `DOCKER_HOST` would give it.
    pub host: String,
    /// The context's own `ca.pem`, `cert.pem` and `key.pem`, if it has TLS material: TLS with
    /// them.
    pub tls_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    #[error("docker context {name:?}: no such context in {store}; there {}", there(.known))]
    Unknown {
        name: String,
        store: String,
        known: Vec<String>,
    },
    #[error("docker context {name:?}: {path}: {why}")]
    Unreadable {
        name: String,
        path: String,
        why: String,
    },
    #[error("docker context {name:?}: it has no docker endpoint ({path})")]
    NoEndpoint { name: String, path: String },
    #[error(
        "docker context {name:?}: its endpoint skips TLS verification (SkipTLSVerify), which this exporter does not do; give the context the engine's CA"
    )]
    SkipsVerification { name: String },
    #[error("{path}: {why}")]
    Config { path: String, why: String },
}

fn there(known: &[String]) -> String {
    match known {
        [] => "are none".to_owned(),
        [one] => format!("is {one}"),
        many => format!("are: {}", many.join(", ")),
    }
}

/// The CLI's configuration folder: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".docker"),
    }
}

#[derive(Deserialize)]
struct Config {
    #[serde(default, rename = "currentContext")]
    current_context: Option<String>,
}

/// The current context of the CLI whose configuration is in `dir` (`docker context use`), if
/// it is not the default one. No `config.json` is no current context.
pub fn current(dir: &Path) -> Result<Option<String>, ContextError> {
    let path = dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ContextError::Config {
                path: path.display().to_string(),
                why: e.to_string(),
            });
        }
    };
    let config: Config = serde_json::from_str(&text).map_err(|e| ContextError::Config {
        path: path.display().to_string(),
        why: format!("not a docker CLI configuration: {e}"),
    })?;
    Ok(config
        .current_context
        .filter(|c| !c.is_empty() && c != DEFAULT))
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Endpoints", default)]
    endpoints: std::collections::HashMap<String, MetaEndpoint>,
}

#[derive(Deserialize)]
struct MetaEndpoint {
    #[serde(rename = "Host", default)]
    host: String,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// The engine of the context `name` in the store of `dir`.
pub fn resolve(dir: &Path, name: &str) -> Result<ContextEndpoint, ContextError> {
    let id = digest(name);
    let meta_path = dir.join("contexts/meta").join(&id).join("meta.json");
    let text = match std::fs::read_to_string(&meta_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ContextError::Unknown {
                name: name.to_owned(),
                store: dir.join("contexts").display().to_string(),
                known: names(dir),
            });
        }
        Err(e) => {
            return Err(ContextError::Unreadable {
                name: name.to_owned(),
                path: meta_path.display().to_string(),
                why: e.to_string(),
            });
        }
    };
    let unreadable = |why: String| ContextError::Unreadable {
        name: name.to_owned(),
        path: meta_path.display().to_string(),
        why,
    };
    let meta: Meta = serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
    let docker = meta
        .endpoints
        .get("docker")
        .filter(|e| !e.host.is_empty())
        .ok_or_else(|| ContextError::NoEndpoint {
            name: name.to_owned(),
            path: meta_path.display().to_string(),
        })?;
    if docker.skip_tls_verify {
        return Err(ContextError::SkipsVerification {
            name: name.to_owned(),
        });
    }
    let tls_dir = dir.join("contexts/tls").join(&id).join("docker");
    Ok(ContextEndpoint {
        host: docker.host.clone(),
        tls_dir: tls_dir.join("ca.pem").exists().then_some(tls_dir),
    })
}

/// The names of the contexts in the store of `dir`, sorted (and `default`).
fn names(dir: &Path) -> Vec<String> {
    let mut names = vec![DEFAULT.to_owned()];
    let entries = std::fs::read_dir(dir.join("contexts/meta"))
        .into_iter()
        .flatten();
    for entry in entries.flatten() {
        let meta = std::fs::read_to_string(entry.path().join("meta.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Meta>(&t).ok());
        names.extend(meta.map(|m| m.name));
    }
    names.sort();
    names
}

/// A context's folder name: the SHA-256 of its name, in hex.
fn digest(name: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, name.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(contexts: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "dee-contexts-{}-{}",
            std::process::id(),
            contexts.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, meta) in contexts {
            let d = dir.join("contexts/meta").join(digest(name));
            std::fs::create_dir_all(&d).expect("a folder");
            std::fs::write(d.join("meta.json"), meta).expect("write");
        }
        std::fs::create_dir_all(&dir).expect("a folder");
        dir
    }

    /// A context's endpoint and TLS folder are read where the CLI writes them; an unknown
    /// name is one line naming the contexts there are.
    #[test]
    fn contexts_are_read_from_the_clis_store() {
        let remote = r#"{"Name":"remote","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://10.0.0.5:2376","SkipTLSVerify":false}}}"#;
        let lax = r#"{"Name":"lax","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://10.0.0.6:2376","SkipTLSVerify":true}}}"#;
        let dir = store(&[("remote", remote), ("lax", lax)]);
        // The SHA-256 of "remote", as `docker context create remote` names its folder.
        assert_eq!(
            digest("remote"),
            "b71199ebd070b36beab7317920c2c2f1d777df8d05e5527d8458fda57cb17a7a"
        );
        let tls = dir
            .join("contexts/tls")
            .join(digest("remote"))
            .join("docker");
        assert_eq!(
            resolve(&dir, "remote"),
            Ok(ContextEndpoint {
                host: "tcp://10.0.0.5:2376".into(),
                tls_dir: None
            })
        );
        std::fs::create_dir_all(&tls).expect("a folder");
        std::fs::write(tls.join("ca.pem"), "x").expect("write");
        assert_eq!(resolve(&dir, "remote").map(|e| e.tls_dir), Ok(Some(tls)));
        assert_eq!(
            resolve(&dir, "nope").expect_err("unknown").to_string(),
            format!(
                "docker context \"nope\": no such context in {}; there are: default, lax, remote",
                dir.join("contexts").display()
            )
        );
        assert_eq!(
            resolve(&dir, "lax").expect_err("lax").to_string(),
            "docker context \"lax\": its endpoint skips TLS verification (SkipTLSVerify), which this exporter does not do; give the context the engine's CA"
        );
        assert_eq!(current(&dir), Ok(None), "no config.json");
        std::fs::write(
            dir.join("config.json"),
            r#"{"auths":{},"currentContext":"remote"}"#,
        )
        .expect("write");
        assert_eq!(current(&dir), Ok(Some("remote".into())));
        std::fs::write(dir.join("config.json"), r#"{"currentContext":"default"}"#).expect("write");
        assert_eq!(current(&dir), Ok(None));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
