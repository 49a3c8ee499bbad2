"""The usual alternative, for the performance comparison: a small emnify events exporter in Python.

What most users would write instead of emnify-exporter: `requests` for login and paging, a set for
dedup, `prometheus_client` counters. It polls windows like the Rust exporter and exits once it has
counted --stop-after events, printing one JSON line: events, seconds, peak RSS.
"""

import argparse
import json
import resource
import time
from datetime import datetime, timezone

import requests
from prometheus_client import Counter, start_http_server

SOURCES = {0: "Network", 1: "Policy Control", 2: "API"}
SEVERITIES = {0: "Info", 1: "Warn", 2: "Critical"}


def q_date(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--lookback", type=float, default=3600)
    parser.add_argument("--stop-after", type=int, default=0, help="stop once this many events are counted")
    parser.add_argument("--duration", type=float, default=0, help="or stop after this many seconds")
    parser.add_argument("--interval", type=float, default=0, help="seconds between polls")
    parser.add_argument("--overlap", type=float, default=0, help="slide the window, re-reading this much of the last one")
    args = parser.parse_args()

    events_total = Counter(
        "emnify_events",
        "emnify events",
        ["event_type", "event_type_id", "event_source", "event_severity", "organisation", "organisation_id"],
    )
    if args.port:
        start_http_server(args.port, addr="127.0.0.1")
    session = requests.Session()
    jwt = session.post(f"{args.api_url}/api/v1/authenticate", json={"application_token": args.token}).json()["auth_token"]
    session.headers["Authorization"] = f"Bearer {jwt}"
    names = {t["id"]: t["description"] for t in session.get(f"{args.api_url}/api/v1/event/type").json()}

    seen = set()
    counted = 0
    started = time.monotonic()
    window_start = time.time() - args.lookback
    def running() -> bool:
        if args.duration:
            return time.monotonic() - started < args.duration
        return counted < args.stop_after

    while running():
        poll_started = time.monotonic()
        until = time.time()
        page, total_pages = 1, 1
        while page <= total_pages:
            params = {
                "page": page,
                "per_page": args.page_size,
                "sort": "id",
                "q": f"from:{q_date(window_start)},until:{q_date(until)}",
            }
            response = session.get(f"{args.api_url}/api/v1/event", params=params)
            if response.status_code == 429:
                # What a plain client does about emnify's rate limit: wait a moment and ask again.
                time.sleep(0.5)
                continue
            total_pages = int(response.headers.get("X-Total-Pages", page))
            for event in response.json():
                event_id = event.get("id")
                if event_id is None or event_id in seen:
                    continue
                seen.add(event_id)
                type_id = event["event_type"]["id"]
                organisation = event.get("organisation") or {}
                events_total.labels(
                    names.get(type_id, "unknown"),
                    str(type_id),
                    SOURCES.get((event.get("event_source") or {}).get("id"), "unknown"),
                    SEVERITIES.get((event.get("event_severity") or {}).get("id"), "unknown"),
                    organisation.get("name", "unknown"),
                    str(organisation.get("id", "unknown")),
                ).inc()
                counted += 1
            page += 1
        if args.overlap:
            window_start = until - args.overlap
        if args.interval:
            time.sleep(max(0.0, args.interval - (time.monotonic() - poll_started)))
    seconds = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = usage.ru_utime + usage.ru_stime
    print(json.dumps({"events": counted, "seconds": seconds, "peak_rss_kb": usage.ru_maxrss, "cpu_seconds": cpu_seconds}))


if __name__ == "__main__":
    main()
