//! In the demo, the simulator's control routes on the exporter's own port. The simulator listens on a
//! loopback port of its own, which a browser on another machine cannot reach; so the landing page links
//! these paths, relative to the page, and the exporter passes them on. The burst button answers with a
//! redirect back to the page, not with the simulator's bare JSON.

use hyper::body::Incoming;
use hyper::header::{HeaderValue, LOCATION};
use hyper::{Method, Request, StatusCode};

use crate::http::{respond, text, HttpResponse};

/// The Generic events the landing page's button makes at once: enough to stand out on the events
/// dashboard beside the demo's own bursts, too few alone to page (the spike alert wants more, see
/// docs/alerting.md).
pub(super) const BURST: usize = 200;

/// The button's path: a `POST` makes a burst and sends the browser back to the page.
pub(super) const BURST_PATH: &str = "/demo/burst";

/// Whether `path` is one of the demo's routes: the button's, or a simulator control route passed on.
pub(super) fn is_demo_path(path: &str) -> bool {
    matches!(path, BURST_PATH | "/simulator/truth" | "/simulator/stats" | "/simulator/generate")
}

/// Answers a demo route by asking the simulator at `simulator` (`http://127.0.0.1:PORT`).
pub(super) async fn answer(simulator: &str, req: &Request<Incoming>) -> HttpResponse {
    let path = req.uri().path();
    if path == BURST_PATH {
        if req.method() != Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "POST makes a burst\n");
        }
        let generate = format!("{simulator}/simulator/generate?generic_org=0&count={BURST}");
        return match ask(Method::POST, &generate).await {
            Ok((status, _)) if status.is_success() => {
                let mut response = text(StatusCode::SEE_OTHER, "burst made\n");
                response.headers_mut().insert(LOCATION, HeaderValue::from_static("/#burst"));
                response
            }
            Ok((status, body)) => respond(status, "application/json", body),
            Err(reason) => respond(StatusCode::BAD_GATEWAY, "text/plain; charset=utf-8", reason),
        };
    }
    let url = format!("{simulator}{}", req.uri().path_and_query().map_or(path, |p| p.as_str()));
    match ask(req.method().clone(), &url).await {
        Ok((status, body)) => respond(status, "application/json", body),
        Err(reason) => respond(StatusCode::BAD_GATEWAY, "text/plain; charset=utf-8", reason),
    }
}

/// One request to the simulator: its status and body, or why it could not be asked.
async fn ask(method: Method, url: &str) -> Result<(StatusCode, bytes::Bytes), String> {
    static CLIENT: std::sync::OnceLock<Option<reqwest::Client>> = std::sync::OnceLock::new();
    crate::install_crypto_provider();
    let client = CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy() // the simulator is on loopback; an egress proxy must not see it
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .ok()
    });
    let client = client.as_ref().ok_or("cannot make an HTTP client for the demo's simulator\n")?;
    let failed = |e: reqwest::Error| format!("the demo's simulator did not answer: {e}\n");
    let response = client.request(method, url).send().await.map_err(failed)?;
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok((status, response.bytes().await.map_err(failed)?))
}
