//! The hardened HTTP surface: TLS, mutual TLS and basic auth from an exporter-toolkit web config file,
//! hostile label values, and an application token that never leaks.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{blocking_get, parse_exposition, sum, wait_for, Process, TestExporter, TestSimulator};
use emnify_exporter::config::Config;
use emnify_exporter::simulator::{Simulator, SimulatorConfig};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn ca_pem(ca: &CertifiedIssuer<'static, KeyPair>) -> String {
    let cert: &rcgen::Certificate = ca.as_ref();
    cert.pem()
}

/// A certificate and key signed by `ca`: for the server (127.0.0.1) or a client.
fn leaf(ca: &CertifiedIssuer<'static, KeyPair>, client: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names = if client { vec!["prometheus".to_string()] } else { vec!["127.0.0.1".into(), "localhost".into()] };
    let mut params = CertificateParams::new(names).unwrap();
    params.extended_key_usages =
        vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn client(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    emnify_exporter::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(5));
    if let Some((cert, key)) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

async fn simulator(config: SimulatorConfig) -> (Simulator, String, TestSimulator) {
    let test_sim = TestSimulator::start(config).await;
    (test_sim.sim.clone(), test_sim.url.clone(), test_sim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_certificate_reload() {
    let (sim, url, stop) = simulator(common::sim_config(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let first_ca = ca("first CA");
    let (cert, key) = leaf(&first_ca, false);
    write(dir.path(), "server.crt", &cert);
    write(dir.path(), "server.key", &key);
    let web = write(dir.path(), "web.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    let mut config = Config::for_tests(&url, &sim.application_token());
    config.web_config_file = Some(web);
    let running = TestExporter::start(config).await;
    let https = running.base.replace("http://", "https://");

    let trusted = client(&ca_pem(&first_ca), None);
    let r = trusted.get(format!("{https}/metrics")).send().await.expect("TLS works");
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("emnify_up"));
    let plain = reqwest::Client::new().get(format!("{}/metrics", running.base)).send().await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true), "plain HTTP is not served on a TLS port");
    let stranger = client(&ca_pem(&ca("unknown CA")), None);
    assert!(stranger.get(format!("{https}/metrics")).send().await.is_err(), "an untrusted certificate fails");

    // Rotate the certificate: a client that trusts only the new CA gets through without a restart.
    let second_ca = ca("second CA");
    let (cert, key) = leaf(&second_ca, false);
    write(dir.path(), "server.key", &key);
    write(dir.path(), "server.crt", &cert);
    let rotated = client(&ca_pem(&second_ca), None);
    assert!(
        wait_for(Duration::from_secs(10), async || {
            rotated.get(format!("{https}/-/healthy")).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await,
        "the rotated certificate was never served"
    );
    running.shutdown.cancel();
    drop(stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let (sim, url, stop) = simulator(common::sim_config(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("server CA");
    let client_ca = ca("client CA");
    let (cert, key) = leaf(&server_ca, false);
    write(dir.path(), "server.crt", &cert);
    write(dir.path(), "server.key", &key);
    write(dir.path(), "clients.crt", &ca_pem(&client_ca));
    let web = write(
        dir.path(),
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: clients.crt\n  \
         client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS12\n",
    );
    let mut config = Config::for_tests(&url, &sim.application_token());
    config.web_config_file = Some(web);
    let running = TestExporter::start(config).await;
    let https = format!("{}/metrics", running.base.replace("http://", "https://"));

    let server_pem = ca_pem(&server_ca);
    let (good_cert, good_key) = leaf(&client_ca, true);
    let good = client(&server_pem, Some((&good_cert, &good_key)));
    assert_eq!(good.get(&https).send().await.expect("a client certificate from the CA works").status(), 200);
    let landing = good.get(https.replace("/metrics", "/")).send().await.unwrap().text().await.unwrap();
    assert!(landing.contains(", TLS mutual, no auth</td>"), "the landing page says how it is served: {landing}");
    assert!(client(&server_pem, None).get(&https).send().await.is_err(), "no client certificate: refused");
    let (bad_cert, bad_key) = leaf(&ca("rogue CA"), true);
    let rogue = client(&server_pem, Some((&bad_cert, &bad_key)));
    assert!(rogue.get(&https).send().await.is_err(), "a certificate from another CA: refused");
    running.shutdown.cancel();
    drop(stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_with_bcrypt_users() {
    let (sim, url, stop) = simulator(common::sim_config(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("right horse battery", 6).unwrap();
    let web = write(
        dir.path(),
        "web.yml",
        &format!("basic_auth_users:\n  prometheus: '{hash}'\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"),
    );
    let mut config = Config::for_tests(&url, &sim.application_token());
    config.web_config_file = Some(web);
    let running = TestExporter::start(config).await;
    emnify_exporter::install_crypto_provider();
    let http = reqwest::Client::new();
    let metrics = format!("{}/metrics", running.base);

    let anonymous = http.get(&metrics).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Basic realm=\"emnify-exporter\"");
    let wrong = http.get(&metrics).basic_auth("prometheus", Some("wrong")).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let stranger = http.get(&metrics).basic_auth("mallory", Some("right horse battery")).send().await.unwrap();
    assert_eq!(stranger.status(), 401);
    // Over 72 bytes (bcrypt would read only its first 72): refused, and counted by reason.
    let long = format!("right horse battery{}", " staple".repeat(8));
    let refused = http.get(&metrics).basic_auth("prometheus", Some(&long)).send().await.unwrap();
    assert_eq!(refused.status(), 401, "{} bytes", long.len());
    for _ in 0..3 {
        let right = http.get(&metrics).basic_auth("prometheus", Some("right horse battery")).send().await.unwrap();
        assert_eq!(right.status(), 200);
        assert_eq!(right.headers()["x-content-type-options"], "nosniff");
    }
    let right = http.get(&metrics).basic_auth("prometheus", Some("right horse battery")).send().await.unwrap();
    let samples = parse_exposition(&right.text().await.unwrap());
    let too_long = [("reason", "password_too_long")];
    assert_eq!(sum(&samples, "emnify_http_requests_refused_total", &too_long), 1.0, "the wrong ones are not");
    let landing = http.get(&running.base).send().await.unwrap();
    assert_eq!(landing.status(), 401, "the landing page is protected too");
    let landing = http.get(&running.base).basic_auth("prometheus", Some("right horse battery")).send().await.unwrap();
    let html = landing.text().await.unwrap();
    assert!(
        html.contains("<tr id=\"web\"><th>Served on</th><td>127.0.0.1:") && html.contains(", TLS off, basic auth</td>"),
        "{html}"
    );
    for probe in ["/-/healthy", "/-/ready"] {
        let r = http.get(format!("{}{probe}", running.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{probe} stays open for kubelet probes");
    }
    running.shutdown.cancel();
    drop(stop);
}

/// Organisation names with quotes, backslashes, a newline and non-ASCII are escaped so that
/// `promtool check metrics` and a real Prometheus scrape accept them, and Prometheus stores them exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_label_values_survive_promtool_and_a_real_scrape() {
    use emnify_exporter::simulator::events::HOSTILE_ORGANISATION;
    let (sim, url, stop) = simulator(SimulatorConfig { hostile_names: true, ..common::sim_config(4) }).await;
    sim.generate(300);
    sim.generic_burst(2, 10);
    let running = TestExporter::start(Config::for_tests(&url, &sim.application_token())).await;
    let metrics_url = format!("{}/metrics", running.base);
    let id = HOSTILE_ORGANISATION.id.to_string();
    assert!(
        wait_for(Duration::from_secs(20), async || {
            sum(&parse_exposition(&blocking_get(&metrics_url).1), "emnify_events_total", &[]) == 310.0
        })
        .await
    );
    let text = blocking_get(&metrics_url).1;
    let samples = parse_exposition(&text);
    let hostile = samples.iter().find(|s| s.labels.get("organisation_id") == Some(&id)).expect("hostile series");
    assert_eq!(hostile.labels["organisation"], HOSTILE_ORGANISATION.name, "escaping round-trips");
    common::assert_promtool_clean(&text);

    let target = running.base.trim_start_matches("http://").to_string();
    let prometheus = common::prometheus::start_prometheus(&target, "groups: []\n").await;
    let query = format!("count by (organisation) (emnify_events_total{{organisation_id=\"{id}\"}})");
    assert!(
        wait_for(Duration::from_secs(30), async || !prometheus.query(&query).await.is_empty()).await,
        "Prometheus never stored the hostile series"
    );
    let result = prometheus.query(&query).await;
    assert_eq!(result[0]["metric"]["organisation"], HOSTILE_ORGANISATION.name);
    let health = prometheus.query(r#"up{job="emnify-exporter"}"#).await;
    assert_eq!(health[0]["value"][1], "1", "the scrape succeeded");
    running.shutdown.cancel();
    drop(stop);
}

/// The application token appears nowhere: not in logs at debug level (failed and successful logins),
/// not in `/metrics`, not on the landing page, not in error messages.
#[test]
fn the_application_token_never_leaks() {
    const CANARY: &str = "tok-CANARY-7f3a9c2e51";
    let mut everything = String::new();
    // A simulator that rejects the token: login failures get logged.
    let rejecting = Process::start(&["simulate", "--listen=127.0.0.1:0", "--events-per-second=20"], &[]);
    let rejecting_url = rejecting.listening_address("simulator listening");
    // One that accepts it, read from a token file: successful logins and polls get logged.
    let accepting = Process::start(
        &["simulate", "--listen=127.0.0.1:0", "--events-per-second=20", &format!("--token={CANARY}")],
        &[],
    );
    let accepting_url = accepting.listening_address("simulator listening");
    let dir = tempfile::tempdir().unwrap();
    let token_file = write(dir.path(), "token", &format!("{CANARY}\n"));
    let token_file = token_file.to_string_lossy().into_owned();
    // (simulator, extra flags, environment)
    type Run<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let runs: [Run; 2] = [
        (rejecting_url.as_str(), vec![], vec![("EMNIFY_APPLICATION_TOKEN", CANARY)]),
        (accepting_url.as_str(), vec!["--emnify.application-token-file", token_file.as_str()], vec![]),
    ];
    for (sim, extra, env) in runs {
        let api = format!("http://{sim}");
        let mut args = vec![
            "--emnify.api-url",
            api.as_str(),
            "--web.listen-address=127.0.0.1:0",
            "--emnify.poll-interval=1s",
            "--log.level=debug",
        ];
        args.extend(extra);
        let exporter = Process::start(&args, &env);
        let address = exporter.listening_address("emnify exporter listening");
        let metrics_url = format!("http://{address}/metrics");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        // Wait until a poll has finished (failed or succeeded) so the logs hold the login.
        loop {
            let samples = parse_exposition(&blocking_get(&metrics_url).1);
            if sum(&samples, "emnify_api_requests_total", &[("endpoint", "authenticate")]) >= 1.0
                && sum(&samples, "emnify_poll_duration_seconds_count", &[]) >= 1.0
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no poll finished");
            std::thread::sleep(Duration::from_millis(100));
        }
        everything.push_str(&blocking_get(&metrics_url).1);
        everything.push_str(&blocking_get(&format!("http://{address}/")).1);
        everything.push_str(&exporter.kill_and_collect().join("\n"));
    }
    assert!(everything.contains("emnify rejected the application token"), "the failure was logged");
    assert!(everything.contains("logged in to emnify"), "the success was logged");
    assert!(!everything.contains(CANARY), "the token leaked");
    assert!(!everything.contains(&CANARY[4..]), "part of the token leaked");
    // Configuration errors do not echo it either.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emnify-exporter"))
        .args(["--emnify.application-token-file", "/nonexistent"])
        .env("EMNIFY_APPLICATION_TOKEN", CANARY)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains(CANARY) && text.contains("set only one"), "{text}");
}

/// Handshakes are processed one at a time (`--web.max-tls-handshakes 1`), but a place is held only while
/// a ClientHello is processed: 32 clients that got the server's answer to their ClientHello and then
/// stall (never finish the handshake) hold none, and a real client's handshake goes through at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_hold_no_place_at_the_handshake_gate() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let authority = ca("handshake CA");
    let (cert, key) = leaf(&authority, false);
    write(dir.path(), "server.crt", &cert);
    write(dir.path(), "server.key", &key);
    let web = write(dir.path(), "web.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    let mut config = common::push_only_config();
    config.web_config_file = Some(web);
    config.http.max_tls_handshakes = 1;
    let running = TestExporter::start(config).await;
    let trusted = client(&ca_pem(&authority), None);
    let hello = {
        let roots = rustls::RootCertStore::empty();
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let mut hello = Vec::new();
        connection.write_tls(&mut hello).unwrap();
        hello
    };
    let address = running.base.trim_start_matches("http://").to_string();
    let stalled = tokio::task::spawn_blocking(move || {
        (0..32)
            .map(|_| {
                let mut stream = std::net::TcpStream::connect(&address).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                stream.write_all(&hello).unwrap();
                let mut flight = [0u8; 64];
                assert!(stream.read(&mut flight).unwrap() > 0, "the server answered the ClientHello");
                stream
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let https = running.base.replace("http://", "https://");
    let r = trusted.get(format!("{https}/-/healthy")).send().await.expect("a handshake goes through");
    assert_eq!(r.status(), 200);
    drop(stalled);
    running.shutdown.cancel();
}
