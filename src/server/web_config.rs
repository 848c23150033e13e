//! `--web.config.file`: TLS and basic auth for the HTTP side, in the format Prometheus exporters
//! share (prometheus/exporter-toolkit's web configuration), so that one file and one
//! `promtool check web-config` serve every exporter on a host.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths are relative to this file
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
//!   client_ca_file: clients.crt
//!   min_version: TLS12             # TLS12 (default) or TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt hashes only
//! ```
//!
//! Keys of that format this build does not implement (`cipher_suites`, `curve_preferences`,
//! `http_server_config`, ...) are refused by name rather than silently ignored: a config that
//! asks for a restriction must not get a server without it.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use marked_yaml::{Spanned, from_node};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::config_error::{ConfigError, write_problems};

/// Successful logins remembered, so that a scrape every few seconds does not pay bcrypt's
/// cost (tens of milliseconds, on purpose) each time. Cleared when full.
const AUTH_CACHE_ENTRIES: usize = 64;

/// Every problem found in a web config file.
#[derive(Debug, Clone)]
pub struct WebConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for WebConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_problems(f, "the web config", &self.0)
    }
}

impl std::error::Error for WebConfigErrors {}

/// The checked web config.
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<Arc<BasicAuth>>,
}

impl WebConfig {
    /// One line for `check-config` and the start-up log.
    pub fn summary(&self) -> String {
        let tls = match &self.tls {
            Some(_) => "TLS",
            None => "no TLS",
        };
        let users = self.auth.as_ref().map_or(0, |a| a.users.len());
        format!("{tls}, {users} basic-auth user(s)")
    }
}

/// Keys we implement; the unsupported keys of the shared format are fields of the raw structs
/// so that they are refused by name.
const TOP_KEYS: &[&str] = &["tls_server_config", "basic_auth_users"];
const TLS_KEYS: &[&str] = &[
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
    "max_version",
];
const TOP_UNSUPPORTED: &[&str] = &["http_server_config"];
const TLS_UNSUPPORTED: &[&str] = &[
    "cert",
    "key",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
];

#[derive(Deserialize)]
struct Raw {
    tls_server_config: Option<Spanned<RawTls>>,
    basic_auth_users: Option<BTreeMap<String, Spanned<String>>>,
    http_server_config: Option<Spanned<IgnoredAny>>,
}

#[derive(Deserialize)]
struct RawTls {
    cert_file: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    client_ca_file: Option<Spanned<String>>,
    client_auth_type: Option<Spanned<String>>,
    min_version: Option<Spanned<String>>,
    max_version: Option<Spanned<String>>,
    cert: Option<Spanned<IgnoredAny>>,
    key: Option<Spanned<IgnoredAny>>,
    cipher_suites: Option<Spanned<IgnoredAny>>,
    curve_preferences: Option<Spanned<IgnoredAny>>,
    prefer_server_cipher_suites: Option<Spanned<IgnoredAny>>,
    client_allowed_sans: Option<Spanned<IgnoredAny>>,
}

struct Checker {
    file: String,
    dir: PathBuf,
    errors: Vec<ConfigError>,
    /// Where the `tls_server_config` key is: the place of problems with the section as a whole.
    tls_at: (usize, usize),
}

impl Checker {
    fn err<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        let place = at.span().start().map_or((0, 0), |m| (m.line(), m.column()));
        self.err_at(place, message);
    }

    fn err_tls(&mut self, message: impl Into<String>) {
        self.err_at(self.tls_at, message);
    }

    fn err_at(&mut self, (line, column): (usize, usize), message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        });
    }

    /// The certificates of the PEM file `key` names; a problem (unreadable, none in it) is
    /// reported at the file's name.
    fn certs(&mut self, key: &str, file: &Spanned<String>) -> Option<Vec<CertificateDer<'static>>> {
        let certs = CertificateDer::pem_file_iter(self.path(file))
            .and_then(|i| i.collect::<Result<Vec<_>, _>>());
        match certs {
            Ok(certs) if !certs.is_empty() => Some(certs),
            Ok(_) => {
                self.err(
                    file,
                    format!("{key} {}: no certificate in it", file.as_str()),
                );
                None
            }
            Err(e) => {
                self.err(file, format!("{key} {}: {e}", file.as_str()));
                None
            }
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }
}

/// Reads and checks `path`, reporting every problem with its place.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigErrors> {
    let file = path.display().to_string();
    let one = |line, column, message: String| {
        WebConfigErrors(vec![ConfigError {
            file: file.clone(),
            line,
            column,
            message,
        }])
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| one(0, 0, format!("cannot read it: {e}")))?;
    let node =
        marked_yaml::parse_yaml(0, &text).map_err(|e| one(0, 0, format!("invalid YAML: {e}")))?;
    let mut unknown = Vec::new();
    unknown_keys(
        &node,
        "the web config",
        TOP_KEYS,
        TOP_UNSUPPORTED,
        &mut unknown,
    );
    if let Some(tls) = node
        .as_mapping()
        .and_then(|m| m.get_node("tls_server_config"))
    {
        unknown_keys(
            tls,
            "tls_server_config",
            TLS_KEYS,
            TLS_UNSUPPORTED,
            &mut unknown,
        );
    }
    if !unknown.is_empty() {
        return Err(WebConfigErrors(
            unknown
                .into_iter()
                .map(|(line, column, message)| ConfigError {
                    file: file.clone(),
                    line,
                    column,
                    message,
                })
                .collect(),
        ));
    }
    let raw: Raw = from_node(&node).map_err(|e| {
        let (line, column) = e.start_mark().map_or((0, 0), |m| (m.line(), m.column()));
        let mut msg = e.to_string();
        // The library appends the place; ours leads the line instead.
        if let Some(i) = msg.find(" at ") {
            msg.truncate(i);
        }
        one(line, column, format!("{msg}; see docs/security.md"))
    })?;
    let mut c = Checker {
        file: file.clone(),
        dir: path.parent().map(Path::to_owned).unwrap_or_default(),
        errors: Vec::new(),
        tls_at: node
            .as_mapping()
            .and_then(|m| m.keys().find(|k| k.as_str() == "tls_server_config"))
            .and_then(|k| k.span().start())
            .map_or((0, 0), |m| (m.line(), m.column())),
    };
    if let Some(h) = &raw.http_server_config {
        c.err(
            h,
            "http_server_config is not supported by this exporter; remove it",
        );
    }
    let tls = raw.tls_server_config.as_ref().and_then(|t| tls(&mut c, t));
    let auth = raw.basic_auth_users.as_ref().map(|users| {
        let mut checked = BTreeMap::new();
        for (user, hash) in users {
            if bcrypt::HashParts::from_str(hash).is_err() {
                // The value itself is never echoed: it is a password hash.
                c.err(
                    hash,
                    format!(
                        "basic_auth_users: the password of {:?} is not a bcrypt hash; make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`",
                        user.as_str()
                    ),
                );
            }
            checked.insert(user.clone(), hash.to_string());
        }
        Arc::new(BasicAuth::new(checked))
    });
    if c.errors.is_empty() {
        Ok(WebConfig { tls, auth })
    } else {
        Err(WebConfigErrors(c.errors))
    }
}

/// Keys of a mapping that are neither implemented nor known-unsupported, with their places.
fn unknown_keys(
    node: &marked_yaml::Node,
    what: &str,
    known: &[&str],
    unsupported: &[&str],
    out: &mut Vec<(usize, usize, String)>,
) {
    let Some(map) = node.as_mapping() else {
        return;
    };
    for key in map.keys() {
        if known.contains(&key.as_str()) || unsupported.contains(&key.as_str()) {
            continue;
        }
        let (line, column) = key
            .span()
            .start()
            .map_or((0, 0), |m| (m.line(), m.column()));
        out.push((
            line,
            column,
            format!(
                "unknown key {:?} in {what}; expected one of {}",
                key.as_str(),
                known.join(", ")
            ),
        ));
    }
}

fn tls(c: &mut Checker, t: &Spanned<RawTls>) -> Option<Arc<rustls::ServerConfig>> {
    let unsupported: [(&str, &Option<Spanned<IgnoredAny>>); 6] = [
        ("cert", &t.cert),
        ("key", &t.key),
        ("cipher_suites", &t.cipher_suites),
        ("curve_preferences", &t.curve_preferences),
        (
            "prefer_server_cipher_suites",
            &t.prefer_server_cipher_suites,
        ),
        ("client_allowed_sans", &t.client_allowed_sans),
    ];
    for (key, v) in unsupported {
        if let Some(v) = v {
            let hint = match key {
                "cert" | "key" => "; give cert_file and key_file instead",
                _ => "; rustls chooses safe ciphers and curves itself",
            };
            c.err(
                v,
                format!("tls_server_config: {key} is not supported by this exporter{hint}"),
            );
        }
    }
    let (Some(cert_file), Some(key_file)) = (&t.cert_file, &t.key_file) else {
        c.err_tls("tls_server_config needs both cert_file and key_file");
        return None;
    };
    let version = |c: &mut Checker, v: &Option<Spanned<String>>, default| match v
        .as_ref()
        .map(|v| (v, v.as_str()))
    {
        None => Some(default),
        Some((_, "TLS12")) => Some(&rustls::version::TLS12),
        Some((_, "TLS13")) => Some(&rustls::version::TLS13),
        Some((v, other)) => {
            c.err(
                v,
                format!(
                    "tls_server_config: version {other:?} is not supported; use TLS12 or TLS13"
                ),
            );
            None
        }
    };
    let min = version(c, &t.min_version, &rustls::version::TLS12);
    let max = version(c, &t.max_version, &rustls::version::TLS13);
    let chain = c.certs("cert_file", cert_file)?;
    let key = match PrivateKeyDer::from_pem_file(c.path(key_file)) {
        Ok(k) => k,
        Err(e) => {
            c.err(key_file, format!("key_file {}: {e}", key_file.as_str()));
            return None;
        }
    };
    let auth_type = t
        .client_auth_type
        .as_ref()
        .map_or("NoClientCert", |a| a.as_str());
    let verify = match auth_type {
        "NoClientCert" => None,
        "RequireAndVerifyClientCert" => Some(true),
        "VerifyClientCertIfGiven" => Some(false),
        other => {
            if let Some(a) = &t.client_auth_type {
                c.err(a, format!("tls_server_config: client_auth_type {other:?} is not supported; use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"));
            }
            return None;
        }
    };
    let (Some(min), Some(max)) = (min, max) else {
        return None;
    };
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| {
                let rank = |v: &rustls::SupportedProtocolVersion| u16::from(v.version);
                rank(v) >= rank(min) && rank(v) <= rank(max)
            })
            .collect();
    if versions.is_empty() {
        c.err_tls("tls_server_config: min_version is above max_version");
        return None;
    }
    let builder = rustls::ServerConfig::builder_with_protocol_versions(&versions);
    let builder = match (verify, &t.client_ca_file) {
        (None, _) => builder.with_no_client_auth(),
        (Some(_), None) => {
            c.err_tls(format!(
                "tls_server_config: client_auth_type {auth_type} needs client_ca_file"
            ));
            return None;
        }
        (Some(required), Some(ca_file)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in c.certs("client_ca_file", ca_file)? {
                if let Err(e) = roots.add(cert) {
                    c.err(ca_file, format!("client_ca_file {}: {e}", ca_file.as_str()));
                    return None;
                }
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
            let verifier = if required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            match verifier.build() {
                Ok(v) => builder.with_client_cert_verifier(v),
                Err(e) => {
                    c.err(ca_file, format!("client_ca_file {}: {e}", ca_file.as_str()));
                    return None;
                }
            }
        }
    };
    match builder.with_single_cert(chain, key) {
        Ok(mut config) => {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(Arc::new(config))
        }
        Err(e) => {
            c.err(
                key_file,
                format!("cert_file and key_file do not make a usable pair: {e}"),
            );
            None
        }
    }
}

/// The users and their bcrypt hashes; checks `Authorization: Basic` headers.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// Keyed hashes of (user, password) pairs that passed; see [`AUTH_CACHE_ENTRIES`].
    passed: Mutex<HashSet<u64>>,
    hasher: foldhash::quality::RandomState,
}

/// A valid bcrypt hash of nothing anyone knows: an unknown user costs the same time as a
/// known one, so that timing does not tell which users exist.
const DUMMY_HASH: &str = "$2b$10$Ks8aYbPvXR3rEHsqsjZ2C.YH4mEbiJ/2Y08dKJ6dHkf8/X6UZ1IWa";

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> Self {
        Self {
            users,
            passed: Mutex::new(HashSet::new()),
            hasher: foldhash::quality::RandomState::default(),
        }
    }

    /// Whether an `Authorization` header value lets the request in. Blocking (bcrypt): call
    /// it off the async workers.
    pub fn check(&self, header: Option<&str>) -> bool {
        use std::hash::BuildHasher;
        let Some((user, password)) = header.and_then(parse_basic) else {
            return false;
        };
        let key = self.hasher.hash_one((&user, &password));
        let passed = || self.passed.lock().unwrap_or_else(|e| e.into_inner());
        if passed().contains(&key) {
            return true;
        }
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.as_str(), true),
            None => (DUMMY_HASH, false),
        };
        let ok = bcrypt::verify(&password, hash).unwrap_or(false) && known;
        if ok {
            let mut p = passed();
            if p.len() >= AUTH_CACHE_ENTRIES {
                p.clear();
            }
            p.insert(key);
        }
        ok
    }
}

fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn errors(path: &Path) -> String {
        match load(path) {
            Ok(_) => panic!("{} loaded", path.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_files_name_the_problem_and_the_place_and_never_the_hash() {
        let dir = std::env::temp_dir().join(format!("dee-web-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = write(
            &dir,
            "a.yml",
            "basic_auth_users:\n  alice: s3cret-not-a-hash\n",
        );
        let f_s = f.display();
        assert_eq!(
            errors(&f),
            format!(
                "1 problem in the web config:\n{f_s}:2:10: basic_auth_users: the password of \"alice\" is not a bcrypt hash; make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`\n"
            )
        );
        let f = write(
            &dir,
            "b.yml",
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
        );
        let e = errors(&f);
        let f_s = f.display();
        assert!(e.starts_with("2 problems in the web config:\n"), "{e}");
        assert!(e.contains(&format!("{f_s}:4:18: tls_server_config: cipher_suites is not supported by this exporter; rustls chooses safe ciphers and curves itself\n")), "{e}");
        assert!(
            e.contains(&format!("{f_s}:2:14: cert_file nope.crt: ")),
            "{e}"
        );
        let f = write(
            &dir,
            "c.yml",
            "tls_server_config:\n  cert_file: x\n  kye_file: y\n",
        );
        assert_eq!(
            errors(&f),
            format!(
                "1 problem in the web config:\n{}:3:3: unknown key \"kye_file\" in tls_server_config; expected one of cert_file, key_file, client_ca_file, client_auth_type, min_version, max_version\n",
                f.display()
            )
        );
        let f = write(&dir, "d.yml", "tls_server_config:\n  cert_file: x\n");
        assert_eq!(
            errors(&f),
            format!(
                "1 problem in the web config:\n{}:1:1: tls_server_config needs both cert_file and key_file\n",
                f.display()
            )
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn basic_auth_checks_bcrypt_and_remembers_successes() {
        let hash = bcrypt::hash("pw", 4).expect("hash");
        let auth = BasicAuth::new([("alice".to_owned(), hash)].into());
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert!(auth.check(Some(&header("alice", "pw"))));
        assert!(auth.check(Some(&header("alice", "pw"))), "from the cache");
        assert!(!auth.check(Some(&header("alice", "pW"))));
        assert!(!auth.check(Some(&header("bob", "pw"))));
        assert!(!auth.check(Some("Bearer abc")));
        assert!(!auth.check(None));
        assert!(bcrypt::HashParts::from_str(DUMMY_HASH).is_ok());
    }
}
