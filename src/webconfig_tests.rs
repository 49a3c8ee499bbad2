//! Unit tests of `webconfig`: loading the file, bcrypt checks and their cache, the 72-byte rule.

use super::*;

#[test]
fn bcrypt_hashes_are_checked_whole_and_basic_is_any_case() {
    let good = bcrypt::hash("pw", 4).unwrap();
    assert_eq!(check_bcrypt_hash(&good), Ok(()));
    for bad in [
        "$2y$10$tooshort".to_string(),
        good.replacen("$04$", "$99$", 1),
        format!("{}!", &good[..59]),
        good.replacen("$2", "$3", 1),
    ] {
        assert!(check_bcrypt_hash(&bad).is_err(), "{bad}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(&path, "basic_auth_users:\n  prometheus: $2y$10$tooshort\n").unwrap();
    let err = WebConfig::load(&path).unwrap_err().to_string();
    assert!(err.contains("basic_auth_users.prometheus") && err.contains("60"), "{err}");
    for header in ["Basic dTpw", "basic dTpw", "BASIC dTpw", "  bAsIc dTpw "] {
        assert_eq!(parse_basic(header), Some(("u".into(), "p".into())), "{header}");
    }
    assert_eq!(parse_basic("Bearer dTpw"), None);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test]
async fn basic_auth_checks_bcrypt_and_caches() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let path = write(dir.path(), "web.yml", &format!("basic_auth_users:\n  alice: '{hash}'\n"));
    let config = Arc::new(WebConfig::load(&path).unwrap());
    let security = WebSecurity::new(path, WebConfig::load(&dir.path().join("web.yml")).unwrap(), &refusals());
    use base64::Engine;
    let header =
        |u: &str, p: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
    assert!(security.authorized(config.clone(), Some(header("alice", "s3cret"))).await);
    assert!(security.authorized(config.clone(), Some(header("alice", "s3cret"))).await, "cached");
    assert!(!security.authorized(config.clone(), Some(header("alice", "wrong"))).await);
    assert!(!security.authorized(config.clone(), Some(header("bob", "s3cret"))).await);
    assert!(!security.authorized(config.clone(), None).await);
    assert!(!security.authorized(config.clone(), Some("Bearer x".into())).await);
    // The unknown user was checked against a configured hash too: the same work, the same time.
    assert_eq!(security.verified.lock().unwrap().len(), 3);
    // A flood of distinct wrong passwords fills the cache; the verified password stays in it.
    for n in 0..CACHE_LIMIT + 10 {
        assert!(!security.authorized(config.clone(), Some(header("alice", &format!("guess {n}")))).await);
    }
    // (Two verified entries: alice's, and bob's, whose password matched the hash of the dummy check.)
    let cache = security.verified.lock().unwrap().clone();
    assert!(cache.len() <= CACHE_LIMIT && cache.values().filter(|ok| **ok).count() == 2, "{}", cache.len());
}

/// A presented password over 72 bytes never matches, not even the one hashed: bcrypt would read only
/// its first 72 bytes, so any tail would do. 72 bytes exactly still work. Each refusal is counted.
#[tokio::test]
async fn passwords_over_72_bytes_never_match_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let long = "p".repeat(72) + &"q".repeat(36);
    let exact = "x".repeat(72);
    let users = [("long", bcrypt::hash(&long, 4).unwrap()), ("exact", bcrypt::hash(&exact, 4).unwrap())];
    let text = users.iter().map(|(u, h)| format!("  {u}: '{h}'\n")).collect::<String>();
    let path = write(dir.path(), "web.yml", &format!("basic_auth_users:\n{text}"));
    let config = Arc::new(WebConfig::load(&path).unwrap());
    let refused = refusals();
    let security = WebSecurity::new(path.clone(), WebConfig::load(&path).unwrap(), &refused);
    use base64::Engine;
    let header = |u: &str, p: &str| {
        Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))))
    };
    let other_tail = "p".repeat(72) + "anything else";
    for password in [long.as_str(), other_tail.as_str()] {
        assert!(!security.authorized(config.clone(), header("long", password)).await, "{}", password.len());
    }
    assert!(security.authorized(config.clone(), header("exact", &exact)).await);
    assert!(!security.authorized(config.clone(), header("exact", &(exact.clone() + "y"))).await);
    assert!(!security.authorized(config.clone(), header("exact", &"y".repeat(72))).await);
    // Counted by reason: the three over 72 bytes, not the wrong password of 72.
    assert_eq!(refused.with_label_values(&[PASSWORD_TOO_LONG]).get(), 3);
}

/// An unregistered `emnify_http_requests_refused_total`, to read what was counted.
fn refusals() -> prometheus::IntCounterVec {
    let opts = prometheus::Opts::new("http_requests_refused", "unregistered");
    prometheus::IntCounterVec::new(opts, &["reason"]).unwrap()
}

#[test]
fn bad_files_are_refused_with_the_flag_named() {
    let dir = tempfile::tempdir().unwrap();
    for (text, wanted) in [
        ("basic_auth_users:\n  alice: plain\n", "bcrypt"),
        ("tls_server_config:\n  key_file: k\n", "cert_file"),
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n", "nope.crt"),
        ("unknown_thing: 1\n", "unknown field"),
        ("basic_auth_users: [", "web.yml"),
    ] {
        let path = write(dir.path(), "web.yml", text);
        let err = WebConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("--web.config.file") && err.contains(wanted), "{text:?}: {err}");
    }
    let empty = write(dir.path(), "empty.yml", "");
    assert!(WebConfig::load(&empty).unwrap().tls.is_none());
}
