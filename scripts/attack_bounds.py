"""The attacks of issue 25 for scripts/attack: what one pusher or scraper may cost. Each prints what is
bounded, and what a client sees at the bound; scripts/attack runs them (`--only NAME`)."""
import base64
import gzip
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from attack_harness import (Exporter, Prober, events, flood, peak_rss_mib, push, request, scaled,
                            threads, wait_until, SECRET, SECRET_HEADER)

LONG_PASSWORD = ("a-108-byte-password-" * 6)[:108]
# bcrypt (cost 10) of LONG_PASSWORD, made once with libxcrypt (a hash is not a secret).
LONG_PASSWORD_HASH = "$2b$10$aYHw9a8xZDLTZCZubaVkuOXRL70zAywSzbVlhPWnYDZTY5OSlaKI6"


def streamed_push(exporter, body, results, key):
    """POSTs `body` while a second thread reads the answer, so an answer sent before the body is read
    whole (413) is seen even when the connection is then closed under the sender."""
    s = socket.create_connection((exporter.host, exporter.port), timeout=60)
    head = (f"POST /webhook/events HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    answer = []

    def read():
        try:
            answer.append(s.recv(200))
        except OSError:
            answer.append(b"")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        s.sendall(head)
        view = memoryview(body)
        for at in range(0, len(body), 1 << 20):
            s.sendall(view[at:at + (1 << 20)])
    except OSError:
        pass  # closed under us: the answer came first
    reader.join()
    s.close()
    text = answer[0] if answer else b""
    results[key] = int(text.split(b" ", 2)[1]) if text.startswith(b"HTTP/1.") else 0


def tiny_records():
    exporter = Exporter()
    idle = exporter.rss_mib()
    n = scaled(1_000_000)
    body = ("[" + "1," * (n - 1) + "1]").encode()
    codes = {}
    streamed_push(exporter, body, codes, "one")
    one = {"records": n, "body_bytes": len(body), "code": codes["one"], "rss_idle_mib": idle,
           "rss_peak_mib": peak_rss_mib(exporter), "rss_after_mib": exporter.rss_mib()}
    cap = {"10000_events": push(exporter, events(1, 10_000)), "10001_events": push(exporter, events(20_001, 10_001))}
    exporter.stop()
    return {"one_push_of_tiny_records": one, "cap": cap}


def tiny_records_x4():
    # Four pushes of 32 MiB of tiny records at once: every processing slot, the whole body budget.
    exporter = Exporter()
    idle = exporter.rss_mib()
    records = scaled(16 * 1024 * 1024 - 1)
    body = ("[" + "1," * (records - 1) + "1]").encode()
    codes = {}
    senders = [threading.Thread(target=streamed_push, args=(exporter, body, codes, k)) for k in range(4)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    four = {"records_each": records, "body_bytes_each": len(body), "codes": sorted(codes.values()),
            "rss_idle_mib": idle, "rss_peak_mib": peak_rss_mib(exporter), "alive": exporter.alive()}
    exporter.stop()
    return four


def many_event_types():
    exporter = Exporter()
    n = scaled(200_000)
    codes = {}
    for first in range(1, n + 1, 10_000):
        k = min(10_000, n + 1 - first)
        body = "[" + ",".join(f'{{"id":{i},"event_type":{{"id":{100000 + i}}}}}' for i in range(first, first + k)) + "]"
        code = push(exporter, body)
        codes[str(code)] = codes.get(str(code), 0) + 1
    wait_until(lambda: exporter.metric("emnify_events_total") >= n, timeout=60, required=False)
    text = request(exporter, "GET", "/metrics", headers={"Authorization": exporter.auth})[1].decode()
    series = sum(1 for line in text.splitlines() if line.startswith("emnify_"))
    result = {"event_types_pushed": n, "codes": codes, "counted": exporter.metric("emnify_events_total"),
              "emnify_series": series, "metrics_bytes": len(text),
              "over_limit": exporter.metric("emnify_events_over_event_type_limit_total"),
              "rss_mib": exporter.rss_mib()}
    exporter.stop()
    return result


def long_names():
    exporter = Exporter()
    idle = exporter.rss_mib()
    size = scaled(30_000_000)
    codes = []
    for org in range(1, 9):
        name = chr(ord("A") + org) * size
        body = (f'{{"id":{org},"event_type":{{"id":3}},"organisation":{{"id":{org},"name":"{name}"}}}}').encode()
        results = {}
        streamed_push(exporter, body, results, "code")
        codes.append(results["code"])
    wait_until(lambda: exporter.metric("emnify_events_total") >= 8, timeout=30, required=False)
    time.sleep(2)  # the trimmer returns what the bodies used
    result = {"organisations": 8, "name_bytes": size, "codes": codes, "rss_idle_mib": idle,
              "rss_after_mib": exporter.rss_mib(), "rss_peak_mib": peak_rss_mib(exporter)}
    exporter.stop()
    return result


def gzip_scrapers():
    exporter = Exporter(auth=False)
    for batch in range(4):
        push(exporter, events(1 + batch * 500, 500, organisation=lambda i: i))
    wait_until(lambda: exporter.metric("emnify_organisations") >= 2000)
    size = len(request(exporter, "GET", "/metrics")[1])
    idle, peak_threads = exporter.rss_mib(), [threads(exporter)]
    prober = Prober(exporter, scrape=False)
    stop = threading.Event()

    def watch():
        while not stop.wait(0.1):
            peak_threads.append(threads(exporter))

    watcher = threading.Thread(target=watch)
    watcher.start()
    push_ms = []

    def pusher():
        k = 0
        while not stop.wait(0.2):
            started = time.monotonic()
            push(exporter, events(100_000 + k * 10, 10))
            push_ms.append((time.monotonic() - started) * 1000)
            k += 1

    timing = threading.Thread(target=pusher)
    timing.start()
    codes = flood(scaled(200), 10, lambda: request(exporter, "GET", "/metrics", headers={"Accept-Encoding": "gzip"},
                                                   timeout=30)[0])
    stop.set()
    watcher.join()
    timing.join()
    push_ms.sort()
    result = {"scrapers": scaled(200), "metrics_bytes": size, "codes": codes, "rss_idle_mib": idle,
              "rss_peak_mib": peak_rss_mib(exporter), "threads_peak": max(peak_threads),
              "push_ms_p50": round(push_ms[len(push_ms) // 2], 1) if push_ms else None,
              "push_ms_max": round(push_ms[-1], 1) if push_ms else None, **prober.finish()}
    exporter.stop()
    return result


def client_hello():
    """A TLS 1.3 ClientHello, made once and sent by every attacker (the server signs for each)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def tls_handshakes():
    results = []
    hello = client_hello()
    with tempfile.TemporaryDirectory() as d:
        for kind, algorithm in (("rsa2048", ["-newkey", "rsa:2048"]), ("ecdsa_p256", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])):
            cert, key = os.path.join(d, f"{kind}.crt"), os.path.join(d, f"{kind}.key")
            subprocess.run(["openssl", "req", "-x509", *algorithm, "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                            "-subj", "/CN=localhost"], check=True, capture_output=True)
            exporter = Exporter(tls=(cert, key))
            prober = Prober(exporter, scrape=False)

            def attack():
                try:
                    with socket.create_connection((exporter.host, exporter.port), timeout=2) as s:
                        s.sendall(hello)
                        return 1 if s.recv(4096) else 0  # the server's flight: it signed
                except OSError:
                    return 0

            answered = flood(scaled(400), 10, attack)
            results.append({"key": kind, "attackers": scaled(400), "server_flights": answered.get("1", 0),
                            **prober.finish(), "alive": exporter.alive()})
            exporter.stop()
    return results


def slow_bodies_600():
    exporter = Exporter()
    prober = Prober(exporter, scrape=False)
    slow = []
    # In waves, so that each wave is inside its handlers (reading bodies) before the next arrives.
    for wave in (scaled(500), scaled(50), scaled(50)):
        for _ in range(wave):
            try:
                s = socket.create_connection((exporter.host, exporter.port), timeout=2)
                s.sendall(f"POST /webhook/events HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\n"
                          f"Content-Length: 100000\r\n\r\n[".encode())
                slow.append(s)
            except OSError:
                pass
        time.sleep(1)
    time.sleep(12)  # held, under the 30 s read timeout: probes meanwhile
    figures = prober.finish()
    evicted = exporter.metric("emnify_http_connections_evicted_total")
    for s in slow:
        s.close()
    result = {"slow_pushes": len(slow), "held_s": 15, "evicted": evicted, **figures, "alive": exporter.alive()}
    exporter.stop()
    return result


def long_password():
    exporter = Exporter(users={"prometheus": LONG_PASSWORD_HASH})

    def code(password):
        auth = "Basic " + base64.b64encode(f"prometheus:{password}".encode()).decode()
        return request(exporter, "GET", "/metrics", headers={"Authorization": auth})[0]

    result = {"whole_108_bytes": code(LONG_PASSWORD), "first_72_bytes": code(LONG_PASSWORD[:72]),
              "first_72_and_another_tail": code(LONG_PASSWORD[:72] + "another tail"), "wrong": code("wrong")}
    # The refusals of passwords over 72 bytes are counted by reason (two above).
    exporter.auth = "Basic " + base64.b64encode(f"prometheus:{LONG_PASSWORD[:72]}".encode()).decode()
    status, body = request(exporter, "GET", "/metrics", headers={"Authorization": exporter.auth})
    series = 'emnify_http_requests_refused_total{reason="password_too_long"} '
    result["refused_password_too_long"] = next(
        (float(line[len(series):]) for line in body.decode(errors="replace").splitlines() if line.startswith(series)),
        None) if status == 200 else None
    exporter.stop()
    return result


def encodings():
    exporter = Exporter()
    plain = events(1, 3).encode()

    def labelled(body, coding):
        headers = {"Content-Type": "application/json", SECRET_HEADER: SECRET, "Content-Encoding": coding}
        return request(exporter, "POST", "/webhook/events", body, headers)[0]

    result = {"gzip_body_labelled_gzip": labelled(gzip.compress(plain), "gzip"),
              "plain_json_labelled_gzip": labelled(plain, "gzip"), "labelled_br": labelled(plain, "br"),
              "labelled_identity": labelled(events(10, 3).encode(), "identity")}
    wait_until(lambda: exporter.metric("emnify_events_total") >= 3, timeout=5, required=False)
    result["counted"] = exporter.metric("emnify_events_total")
    exporter.stop()
    return result


def host_header():
    exporter = Exporter()

    def status(head):
        with socket.create_connection((exporter.host, exporter.port), timeout=5) as s:
            s.sendall(head.encode())
            answer = s.recv(200)
        return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0

    result = {"http11_without_host": status("GET /-/healthy HTTP/1.1\r\nConnection: close\r\n\r\n"),
              "two_hosts": status("GET /-/healthy HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n"),
              "one_host": status("GET /-/healthy HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
              "http10_without_host": status("GET /-/healthy HTTP/1.0\r\n\r\n")}
    exporter.stop()
    return result


ATTACKS = {f.__name__: f for f in (tiny_records, tiny_records_x4, many_event_types, long_names, gzip_scrapers, tls_handshakes,
                                   slow_bodies_600, long_password, encodings, host_header)}
