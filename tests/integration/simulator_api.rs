//! The simulator follows emnify's documented API semantics (docs: shared emnify-api.md §1–2).

use crate::common::{self, TestSimulator};

use emnify_exporter::timefmt::{format_filter_date, now_millis};

/// A simulator and a client logged in to it.
struct Api {
    base: String,
    http: reqwest::Client,
    jwt: String,
    /// Serves until the test ends.
    _simulator: TestSimulator,
}

async fn api(simulator: TestSimulator) -> Api {
    let base = simulator.url.clone();
    let http = common::http_client();
    let sim = &simulator.sim;
    let login = http
        .post(format!("{base}/api/v1/authenticate"))
        .body(serde_json::json!({"application_token": sim.application_token()}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&login.text().await.unwrap()).unwrap();
    let jwt = body["auth_token"].as_str().unwrap().to_string();
    Api { base, http, jwt, _simulator: simulator }
}

impl Api {
    async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.http.get(format!("{}{path_and_query}", self.base)).bearer_auth(&self.jwt).send().await.unwrap()
    }
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

fn window() -> String {
    let now = now_millis() / 1000;
    format!("from:{},until:{}", format_filter_date(now - 3600), format_filter_date(now + 5))
}

#[tokio::test]
async fn login_issues_a_jwt_with_exp_and_rejects_bad_tokens() {
    let test_sim = TestSimulator::seeded(1).await;
    let sim = test_sim.sim.clone();
    let api = api(test_sim).await;
    let exp = emnify_exporter::emnify::client::jwt_expiry(&api.jwt).expect("exp claim");
    let lifetime = exp - now_millis() / 1000;
    assert!((14_390..=14_400).contains(&lifetime), "240 minutes, got {lifetime}s");
    let bad = api.http.post(format!("{}/api/v1/authenticate", api.base)).body(r#"{"application_token":"nope"}"#);
    let bad = bad.send().await.unwrap();
    assert_eq!(bad.status(), 401);
    assert!(bad.text().await.unwrap().is_empty(), "emnify answers 401 with an empty body");
    let anonymous = api.http.get(format!("{}/api/v1/event", api.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    sim.expire_tokens();
    assert_eq!(api.get("/api/v1/event/type").await.status(), 401, "an expired JWT is refused");
}

#[tokio::test]
async fn event_list_pages_like_emnify() {
    let test_sim = TestSimulator::seeded(2).await;
    let sim = test_sim.sim.clone();
    sim.generate(250);
    let api = api(test_sim).await;
    let q = window();
    let r = api.get(&format!("/api/v1/event?page=2&per_page=100&sort=id&q={q}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-total-count"), "250");
    assert_eq!(header(&r, "x-total-pages"), "3");
    assert_eq!(header(&r, "x-current-page"), "2");
    assert_eq!(header(&r, "x-count-per-page"), "100");
    assert!(header(&r, "link").contains("rel=\"next\"") && header(&r, "link").contains("rel=\"last\""));
    let page2: Vec<serde_json::Value> = r.json_body().await;
    assert_eq!(page2.len(), 100);
    let ids: Vec<u64> = page2.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sort=id is ascending");

    let past_end = api.get(&format!("/api/v1/event?page=9&per_page=100&sort=id&q={q}")).await;
    assert_eq!(header(&past_end, "x-current-page"), "3", "a page past the end returns the last page");
    let last: Vec<serde_json::Value> = past_end.json_body().await;
    assert_eq!(last.len(), 50);

    let clamped = api.get(&format!("/api/v1/event?per_page=5000&q={q}")).await;
    assert_eq!(header(&clamped, "x-count-per-page"), "1000", "per_page is clamped to the maximum");
    let newest_first: Vec<serde_json::Value> =
        api.get(&format!("/api/v1/event?sort=-id&q={q}")).await.json_body().await;
    let ids: Vec<u64> = newest_first.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "sort=-id is descending");
}

#[tokio::test]
async fn q_filters_work_and_bad_ones_get_422() {
    let test_sim = TestSimulator::seeded(3).await;
    let sim = test_sim.sim.clone();
    sim.generate(400);
    sim.generic_burst(1, 25);
    let api = api(test_sim).await;
    let q = window();
    let generic: Vec<serde_json::Value> =
        api.get(&format!("/api/v1/event?per_page=1000&q={q},type:0")).await.json_body().await;
    let truth_generic: u64 = sim.truth().generic.values().sum();
    assert_eq!(generic.len() as u64, truth_generic);
    assert!(generic.iter().all(|e| e["event_type"]["id"] == 0));
    let two: Vec<serde_json::Value> =
        api.get(&format!("/api/v1/event?per_page=1000&q={q},type:1%7C2")).await.json_body().await;
    assert!(!two.is_empty() && two.iter().all(|e| matches!(e["event_type"]["id"].as_u64(), Some(1 | 2))));
    let policy: Vec<serde_json::Value> =
        api.get(&format!("/api/v1/event?per_page=1000&q={q},source:1,severity:1")).await.json_body().await;
    assert!(!policy.is_empty() && policy.iter().all(|e| e["event_source"]["id"] == 1));
    let old = format_filter_date(now_millis() / 1000 - 7200);
    let empty = api.get(&format!("/api/v1/event?q=from:{old},until:{old}")).await;
    assert_eq!(header(&empty, "x-total-count"), "0");
    for bad in
        [format!("from:{old}"), "type:x".to_string(), "colour:red".to_string(), "from:yesterday,until:today".into()]
    {
        assert_eq!(api.get(&format!("/api/v1/event?q={bad}")).await.status(), 422, "{bad}");
    }
    assert_eq!(api.get("/api/v1/event?page=abc").await.status(), 400);
    let types: Vec<serde_json::Value> = api.get("/api/v1/event/type").await.json_body().await;
    assert!(types.iter().any(|t| t["id"] == 0 && t["description"] == "Generic"));
}

trait JsonBody {
    async fn json_body<T: serde::de::DeserializeOwned>(self) -> T;
}

impl JsonBody for reqwest::Response {
    async fn json_body<T: serde::de::DeserializeOwned>(self) -> T {
        serde_json::from_str(&self.text().await.unwrap()).unwrap()
    }
}
