//! The Data Streamer watchdog (issue 26): the simulator's data-stream API and a streamer that fails
//! and is restarted, and the exporter watching (and, when asked, restarting) its stream end to end.

use std::time::Duration;

use crate::common::{self, wait_for, TestSimulator, PATIENCE};
use emnify_exporter::simulator::data_stream::{StreamStatus, EVENT_STREAM, USAGE_STREAM};
use emnify_exporter::simulator::StreamerConfig;

/// A JWT of the simulator's, from its login, for calling the API by hand.
async fn jwt(test_sim: &TestSimulator) -> String {
    let client = common::http_client();
    let body = serde_json::json!({"application_token": test_sim.sim.application_token()}).to_string();
    let answer = client.post(format!("{}/api/v1/authenticate", test_sim.url)).body(body).send().await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    value["auth_token"].as_str().expect("a JWT").to_string()
}

async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    let answer = client.get(url).bearer_auth(token).send().await.unwrap();
    serde_json::from_str(&answer.text().await.unwrap()).unwrap()
}

/// A loopback URL nothing listens on: a port bound and given back.
fn dead_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}{path}")
}

/// The simulator lists its streams as emnify does, answers the state catalogue, restarts by id, and
/// refuses a request without a JWT; its streamer goes to Error after the set number of failed
/// deliveries and stays there, holding its events, until restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_data_stream_api_lists_fails_and_restarts() {
    let test_sim = TestSimulator::seeded(2601).await;
    let sim = &test_sim.sim;
    let usage = sim.add_data_stream("usage to S3", USAGE_STREAM, "https://example.com/usage", StreamStatus::Paused);
    sim.set_stream_error_after(Some(5));
    let url = dead_url("/webhook/events");
    let streamer = StreamerConfig {
        url: url.clone(),
        batch_size: 10,
        headers: Vec::new(),
        duplicate_chance: 0.0,
        idle: Duration::from_millis(10),
    };
    tokio::spawn(sim.clone().run_streamer(streamer, test_sim.shutdown.clone()));
    sim.generate(25);
    let ours = || sim.data_streams().into_iter().find(|s| s.url == url);
    assert!(
        wait_for(PATIENCE, async || ours().is_some_and(|s| s.status == StreamStatus::Error)).await,
        "the streamer goes to Error: {:?}",
        sim.data_streams()
    );
    let failed = sim.stats().push_failures;
    assert!(failed >= 5, "{failed} failed deliveries");

    let client = common::http_client();
    let token = jwt(&test_sim).await;
    let list = format!("{}/api/v2/data_stream", test_sim.url);
    assert_eq!(client.get(&list).send().await.unwrap().status(), 401, "no JWT, no list");
    let body = get_json(&client, &list, &token).await;
    let streams = body.as_array().expect("a list");
    assert_eq!(streams.len(), 2);
    let stream_id = ours().unwrap().id;
    let listed = streams.iter().find(|s| s["id"] == stream_id).expect("the streamer is listed");
    assert_eq!(listed["status"], serde_json::json!({"id": 3, "description": "Error"}));
    assert_eq!(listed["data_stream_type"]["id"], EVENT_STREAM);
    assert_eq!(listed["destination"]["credentials"]["url"], url.as_str());
    let other = streams.iter().find(|s| s["id"] == usage).expect("the usage stream is listed");
    assert_eq!(other["status"]["description"], "Paused");

    let states = get_json(&client, &format!("{}/api/v2/data_stream/status", test_sim.url), &token).await;
    let names: Vec<&str> = states.as_array().unwrap().iter().filter_map(|s| s["description"].as_str()).collect();
    assert_eq!(names, ["Running", "Paused", "Error", "Pending"]);

    // Nothing is sent while in Error.
    let pushes_in_error = sim.stats().push_failures;
    let restart =
        |id: u64| client.post(format!("{}/api/v2/data_stream/{id}/restart", test_sim.url)).bearer_auth(&token);
    assert_eq!(restart(999).send().await.unwrap().status(), 404);
    assert_eq!(sim.stats().push_failures, pushes_in_error, "a stream in Error sends nothing");
    assert_eq!(restart(stream_id).send().await.unwrap().status(), 200);
    assert_eq!(ours().unwrap().restarts, 1);
    // Restarted against a destination still down, it tries again and fails again.
    assert!(
        wait_for(PATIENCE, async || sim.stats().push_failures >= pushes_in_error + 5
            && ours().is_some_and(|s| s.status == StreamStatus::Error))
        .await,
        "a restarted stream tries again and goes back to Error: {:?}",
        ours()
    );
    assert_eq!(sim.stats().pushes, 0, "nothing was ever delivered");
}
