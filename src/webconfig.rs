//! `--web.config.file`: TLS, mutual TLS and basic auth in the Prometheus exporter-toolkit format.
//!
//! The same YAML file a Prometheus exporter takes works here:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
//!   client_ca_file: ca.crt
//!   min_version: TLS12
//! http_server_config:
//!   headers: {X-Content-Type-Options: nosniff}
//! basic_auth_users:
//!   prometheus: $2y$10$...                           # bcrypt hash
//! ```
//!
//! The file and the certificate files it names are checked for changes at most
//! once a second; a changed, valid set replaces the old one without a restart
//! (certificate rotation), an invalid one is logged and the old one kept.
//! A bcrypt check is slow by design, so a verified password is cached (by its
//! SHA-256, never in clear). bcrypt reads only a password's first 72 bytes, so a longer one is
//! refused outright: otherwise any password sharing those 72 bytes would match.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;

use crate::loglimit::{LogLimiter, MINUTE};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    tls_server_config: Option<TlsFormat>,
    http_server_config: Option<HttpFormat>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFormat {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    // Accepted for compatibility; rustls chooses its own safe suites and curves.
    cipher_suites: Option<serde_yaml_ng::Value>,
    curve_preferences: Option<serde_yaml_ng::Value>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFormat {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    http2: Option<bool>,
}

/// A loaded web configuration.
pub struct WebConfig {
    pub tls: Option<Arc<ServerConfig>>,
    /// `client_auth_type` as configured (`NoClientCert` without TLS or when absent).
    client_auth_type: String,
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    users: BTreeMap<String, String>,
    /// Files whose change means "load again", with their modification times.
    watched: Vec<(PathBuf, Option<SystemTime>)>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("--web.config.file {path}: {message}")]
pub struct WebConfigError {
    path: String,
    message: String,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl WebConfig {
    /// Reads and checks the file and everything it names.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let fail = |message: String| WebConfigError { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let file: FileFormat = if text.trim().is_empty() {
            FileFormat::default()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| fail(e.to_string()))?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let mut watched = vec![(path.to_path_buf(), modified(path))];
        let client_auth_type = file
            .tls_server_config
            .as_ref()
            .and_then(|tls| tls.client_auth_type.clone())
            .unwrap_or_else(|| "NoClientCert".to_string());
        let tls = match file.tls_server_config {
            Some(tls) => Some(Arc::new(build_tls(&tls, base, &mut watched).map_err(fail)?)),
            None => None,
        };
        for (user, hash) in &file.basic_auth_users {
            if let Err(why) = check_bcrypt_hash(hash) {
                return Err(fail(format!(
                    "basic_auth_users.{user}: not a usable bcrypt hash ({why}); make one with htpasswd -nBC 10 \"\" | tr -d ':\\n'"
                )));
            }
        }
        let mut headers = Vec::new();
        if let Some(http) = file.http_server_config {
            if http.http2 == Some(true) {
                tracing::warn!("http_server_config.http2 is not supported; serving HTTP/1.1");
            }
            for (name, value) in http.headers {
                let name = hyper::header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| fail(format!("http_server_config.headers: bad header name {name:?}")))?;
                let value = hyper::header::HeaderValue::from_str(&value)
                    .map_err(|_| fail(format!("http_server_config.headers.{name}: bad value")))?;
                headers.push((name, value));
            }
        }
        Ok(WebConfig { tls, client_auth_type, headers, users: file.basic_auth_users, watched })
    }

    /// Whether any watched file changed since loading.
    fn changed(&self) -> bool {
        self.watched.iter().any(|(path, time)| modified(path) != *time)
    }

    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// TLS as the start-up line and the landing page say it: `off`, `on`, `on, client certificates
    /// verified if given`, or `mutual` (client certificates required).
    pub fn tls_mode(&self) -> &'static str {
        match (&self.tls, self.client_auth_type.as_str()) {
            (None, _) => "off",
            (Some(_), "NoClientCert") => "on",
            (Some(_), "VerifyClientCertIfGiven") => "on, client certificates verified if given",
            (Some(_), _) => "mutual",
        }
    }
}

fn build_tls(
    tls: &TlsFormat,
    base: &Path,
    watched: &mut Vec<(PathBuf, Option<SystemTime>)>,
) -> Result<ServerConfig, String> {
    let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
    let cert_file = resolve(tls.cert_file.as_deref().ok_or("tls_server_config.cert_file is required")?);
    let key_file = resolve(tls.key_file.as_deref().ok_or("tls_server_config.key_file is required")?);
    if tls.cipher_suites.is_some() || tls.curve_preferences.is_some() || tls.prefer_server_cipher_suites.is_some() {
        tracing::warn!("tls_server_config cipher_suites/curve_preferences are ignored: rustls uses its own safe set");
    }
    if tls.client_allowed_sans.is_some() {
        return Err("tls_server_config.client_allowed_sans is not supported".into());
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("cert_file {}: no certificate in it", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| format!("key_file {}: {e}", key_file.display()))?;
    watched.push((cert_file.clone(), modified(&cert_file)));
    watched.push((key_file.clone(), modified(&key_file)));

    let versions: Vec<&'static rustls::SupportedProtocolVersion> = {
        let parse = |v: &Option<String>, default: &str| -> Result<u8, String> {
            match v.as_deref().unwrap_or(default) {
                "TLS12" => Ok(12),
                "TLS13" => Ok(13),
                "TLS10" | "TLS11" => Err("TLS 1.0 and 1.1 are not supported; use TLS12 or TLS13".into()),
                other => Err(format!("unknown TLS version {other}")),
            }
        };
        let (min, max) = (parse(&tls.min_version, "TLS12")?, parse(&tls.max_version, "TLS13")?);
        let mut v = Vec::new();
        if min <= 12 && max >= 12 {
            v.push(&rustls::version::TLS12);
        }
        if max >= 13 {
            v.push(&rustls::version::TLS13);
        }
        if v.is_empty() {
            return Err("min_version is above max_version".into());
        }
        v
    };
    let builder = ServerConfig::builder_with_protocol_versions(&versions);
    let auth_type = tls.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match auth_type {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let ca_file = resolve(
                tls.client_ca_file.as_deref().ok_or(format!("client_auth_type {auth_type} needs client_ca_file"))?,
            );
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&ca_file).map_err(|e| format!("client_ca_file: {e}"))? {
                roots
                    .add(cert.map_err(|e| format!("client_ca_file: {e}"))?)
                    .map_err(|e| format!("client_ca_file: {e}"))?;
            }
            watched.push((ca_file.clone(), modified(&ca_file)));
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
            let verifier =
                if auth_type == "VerifyClientCertIfGiven" { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("client_ca_file: {e}"))?)
        }
        "RequestClientCert" | "RequireAnyClientCert" => {
            return Err(format!("client_auth_type {auth_type} is not supported (certificates would go unverified)"))
        }
        other => return Err(format!("unknown client_auth_type {other}")),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| format!("certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The live web configuration: reloaded when its files change, with a cache of verified passwords.
pub struct WebSecurity {
    path: PathBuf,
    current: Mutex<(Arc<WebConfig>, Instant)>,
    verified: Mutex<HashMap<[u8; 32], bool>>,
    /// bcrypt checks running at once.
    checks: tokio::sync::Semaphore,
    /// Says a password over [`BCRYPT_MAX_PASSWORD_BYTES`] was refused, at most once a minute.
    long_logged: LogLimiter,
    /// `emnify_http_requests_refused_total{reason="password_too_long"}`: the log says it once a minute,
    /// the counter says how often (a client retrying a long password, or someone probing the rule).
    long_refused: prometheus::IntCounter,
}

/// The `reason` of `emnify_http_requests_refused_total` for a basic-auth password over
/// [`BCRYPT_MAX_PASSWORD_BYTES`].
pub const PASSWORD_TOO_LONG: &str = "password_too_long";

/// The bytes of a password bcrypt reads; the rest would be ignored, so a longer password is refused.
pub const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;

/// bcrypt checks at once, on the blocking pool: enough for Prometheus and a few users, few enough
/// that a flood of wrong passwords cannot take the machine's two cores.
const MAX_CONCURRENT_CHECKS: usize = 2;

/// How often, at most, the files are checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(1);
/// Cached password checks; when full, the failed ones are forgotten (a flood of distinct wrong
/// passwords must not push Prometheus's verified one out, or its scrapes would queue behind the flood).
const CACHE_LIMIT: usize = 1024;

impl WebSecurity {
    /// `refused` is `emnify_http_requests_refused_total`, where passwords over 72 bytes are counted.
    pub fn new(path: PathBuf, config: WebConfig, refused: &prometheus::IntCounterVec) -> Self {
        WebSecurity {
            path,
            current: Mutex::new((Arc::new(config), Instant::now())),
            verified: Mutex::new(HashMap::new()),
            checks: tokio::sync::Semaphore::new(MAX_CONCURRENT_CHECKS),
            long_logged: LogLimiter::new(MINUTE),
            long_refused: refused.with_label_values(&[PASSWORD_TOO_LONG]),
        }
    }

    /// The configuration in force, reloaded first if a file changed.
    pub fn current(&self) -> Arc<WebConfig> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.1.elapsed() >= RELOAD_CHECK {
            current.1 = Instant::now();
            if current.0.changed() {
                match WebConfig::load(&self.path) {
                    Ok(fresh) => {
                        tracing::info!(path = %self.path.display(), "reloaded the web configuration");
                        current.0 = Arc::new(fresh);
                        self.verified.lock().unwrap_or_else(PoisonError::into_inner).clear();
                    }
                    Err(err) => tracing::error!(error = %err, "keeping the previous web configuration"),
                }
            }
        }
        current.0.clone()
    }

    /// Checks an `Authorization` header against `basic_auth_users`; true when no users are configured.
    ///
    /// bcrypt costs tens of milliseconds of CPU: it runs on the blocking pool, at most
    /// [`MAX_CONCURRENT_CHECKS`] at once (a flood of wrong passwords queues there, never on the
    /// async workers that answer probes and scrapes). An unknown user is checked against a configured
    /// hash all the same, so the answer's timing does not tell which user names exist.
    pub async fn authorized(&self, config: Arc<WebConfig>, header: Option<String>) -> bool {
        if !config.requires_auth() {
            return true;
        }
        let Some((user, password)) = header.as_deref().and_then(parse_basic) else {
            return false;
        };
        // Refused whatever the user, before any lookup: its timing tells nothing about user names.
        if password.len() > BCRYPT_MAX_PASSWORD_BYTES {
            self.note_long_password();
            return false;
        }
        let (hash, known) = match config.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => match config.users.values().next() {
                Some(hash) => (hash.clone(), false),
                None => return false,
            },
        };
        let key = {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            for part in [user.as_bytes(), b"\0", password.as_bytes(), b"\0", hash.as_bytes()] {
                ctx.update(part);
            }
            let mut key = [0u8; 32];
            key.copy_from_slice(ctx.finish().as_ref());
            key
        };
        if let Some(ok) = self.verified.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return *ok && known;
        }
        let Ok(_slot) = self.checks.acquire().await else {
            return false;
        };
        let verified = tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false));
        let ok = verified.await.unwrap_or(false);
        let mut cache = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_LIMIT {
            cache.retain(|_, verified| *verified);
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
        }
        cache.insert(key, ok);
        ok && known
    }

    /// Counts a password over 72 bytes refused, and says so (at most once a minute, never the password).
    fn note_long_password(&self) {
        self.long_refused.inc();
        if let Some(refused) = self.long_logged.note() {
            tracing::warn!(
                refused_since_last_line = refused,
                "refused basic auth with a password over 72 bytes: bcrypt reads only 72, so such a password could \
                 never be told from others sharing them; use one of at most 72 bytes (logged at most once a minute; \
                 counted in emnify_http_requests_refused_total{{reason=\"password_too_long\"}})"
            );
        }
    }
}

/// Why `hash` is not a bcrypt hash that can ever match: `$2a$`/`$2b$`/`$2x$`/`$2y$`, a two-digit cost
/// from 4 to 31, `$`, and 53 characters of bcrypt's base64 alphabet (60 in all). A truncated hash would
/// otherwise pass start-up and then refuse every password without a word.
pub fn check_bcrypt_hash(hash: &str) -> Result<(), String> {
    let b = hash.as_bytes();
    if b.len() != 60 {
        return Err(format!("{} characters, not 60", b.len()));
    }
    if !(b.starts_with(b"$2") && matches!(b[2], b'a' | b'b' | b'x' | b'y') && b[3] == b'$' && b[6] == b'$') {
        return Err("it does not start like $2y$10$".into());
    }
    let cost = std::str::from_utf8(&b[4..6]).ok().and_then(|c| c.parse::<u32>().ok());
    if !cost.is_some_and(|c| (4..=31).contains(&c)) {
        return Err("the cost is not between 04 and 31".into());
    }
    if !b[7..].iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'/')) {
        return Err("it has characters outside bcrypt's alphabet".into());
    }
    Ok(())
}

/// The credentials of an `Authorization: Basic …` header; the scheme is case-insensitive (RFC 7235).
pub fn basic_credentials(header: &str) -> Option<&str> {
    let (scheme, credentials) = header.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("basic").then(|| credentials.trim())
}

/// `Basic base64(user:password)` → `(user, password)`.
fn parse_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = basic_credentials(header)?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
#[path = "webconfig_tests.rs"]
mod tests;
