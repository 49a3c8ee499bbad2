"""The harness of scripts/attack: the exporter under attack, the prober, requests and floods."""
import base64
import itertools
import json
import multiprocessing
import os
import socket
import ssl
import statistics
import subprocess
import tempfile
import threading
import time

PASSWORD = "attack-suite-password"
# bcrypt of PASSWORD at cost 10 (a hash is not a secret; made once with Python's bcrypt).
PASSWORD_HASH = "$2b$10$cgppRDtJzuV33ejjBUiQyuRvmYl2t7DpJGZmW7xjC.KZ9yr4KcFzS"
SECRET = "attack-suite-webhook-secret"
SECRET_HEADER = "X-Emnify-Webhook-Secret"


class Settings:
    """Set by scripts/attack from its command line."""
    binary = "target/release/emnify-exporter"
    scale = 1.0


args = Settings


def scaled(n):
    return max(1, int(n * args.scale))


class Exporter:
    """The binary in push mode on 127.0.0.1:0, with basic auth on /metrics (unless `auth` is false) and a
    webhook secret; over TLS with `tls=(cert_file, key_file)`."""

    def __init__(self, extra=(), auth=True, tls=None, users=None):
        self.dir = tempfile.TemporaryDirectory()
        self.tls = tls
        web = os.path.join(self.dir.name, "web.yml")
        with open(web, "w") as f:
            users = users or ({"prometheus": PASSWORD_HASH} if auth else {})
            if users:
                f.write("basic_auth_users:\n" + "".join(f"  {u}: '{h}'\n" for u, h in users.items()))
            if tls:
                f.write(f"tls_server_config:\n  cert_file: {tls[0]}\n  key_file: {tls[1]}\n")
        env = {"PATH": os.environ.get("PATH", "/usr/bin"), "EMNIFY_EXPORTER_WEBHOOK_SECRET": SECRET}
        # glibc's allocator tunables pass through, for experiments (GLIBC_TUNABLES, MALLOC_ARENA_MAX).
        env.update({k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "GLIBC_"))})
        self.log_path = os.path.join(self.dir.name, "log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [args.binary, "--ingest.mode=push", "--web.listen-address=127.0.0.1:0", f"--web.config.file={web}",
             "--log.format=json", *extra],
            stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.host, self.port = self._address()
        self.auth = "Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
        wait_until(lambda: request(self, "GET", "/-/healthy")[0] == 200)
        # Prometheus's password is verified once, then answered from the cache.
        request(self, "GET", "/metrics", headers={"Authorization": self.auth})

    def _address(self):
        # The exporter's one listening socket, as the kernel reports it.
        for _ in range(400):
            out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
            for line in out.splitlines():
                if f"pid={self.proc.pid}," in line:
                    host, port = line.split()[3].rsplit(":", 1)
                    return host.strip("[]"), int(port)
            time.sleep(0.025)
        raise SystemExit("the exporter did not start listening")

    def status(self, field):
        """A number from /proc/PID/status (`VmRSS`, `VmHWM` in KiB, `Threads`), 0 if absent."""
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def rss_mib(self):
        return round(self.status("VmRSS") / 1024, 1)

    def metric(self, name):
        status, body = request(self, "GET", "/metrics", headers={"Authorization": self.auth})
        total = 0.0
        for line in body.decode(errors="replace").splitlines():
            if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
                total += float(line.rsplit(" ", 1)[1])
        return total if status == 200 else None

    def log_lines(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read().splitlines()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        self.dir.cleanup()


def wait_until(condition, timeout=30, required=True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except (OSError, TypeError):
            pass
        time.sleep(0.02)
    if required:
        raise SystemExit("a condition was not reached in time")
    return False


def request(exporter, method, path, body=b"", headers=None, timeout=10):
    """One request on a fresh connection; (status, body), status 0 when it failed."""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    try:
        with connect(exporter, timeout) as s:
            s.sendall(head.encode() + b"\r\n" + body)
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        answer = b"".join(chunks)
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0
        return status, answer.split(b"\r\n\r\n", 1)[-1]
    except (OSError, ValueError, IndexError, ssl.SSLError):
        return 0, b""


def connect(exporter, timeout=10):
    """A connection to the exporter, over TLS (certificate not checked) when it serves TLS."""
    s = socket.create_connection((exporter.host, exporter.port), timeout=timeout)
    if not exporter.tls:
        return s
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context.wrap_socket(s)


def peak_rss_mib(exporter):
    """The process's peak RSS so far (VmHWM)."""
    return round(exporter.status("VmHWM") / 1024, 1)


def threads(exporter):
    return exporter.status("Threads")


def push(exporter, body, secret=SECRET, timeout=30):
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    return request(exporter, "POST", "/webhook/events", body.encode(), headers, timeout)[0]


class Prober:
    """What a kubelet and Prometheus see: `/-/healthy` on a fresh connection every 20 ms (2 s timeout),
    and an authenticated scrape every 100 ms, timed. It runs in a process of its own, so the attack's
    threads (and Python's global lock) do not slow the measurement."""

    def __init__(self, exporter, scrape=True):
        self.exporter, self.scrape = exporter, scrape
        self.stop_flag = multiprocessing.Event()
        self.receive, send = multiprocessing.Pipe(duplex=False)
        self.process = multiprocessing.Process(target=self._run, args=(send,), daemon=True)
        self.process.start()

    def _run(self, send):
        healthy, scrapes, failed = [], [], [0]

        def timed(path, headers, into):
            started = time.monotonic()
            status, _ = request(self.exporter, "GET", path, headers=headers, timeout=2)
            if status == 200:
                into.append((time.monotonic() - started) * 1000)
            else:
                failed[0] += 1

        def probe():
            while not self.stop_flag.wait(0.02):
                timed("/-/healthy", None, healthy)

        def scrape():
            while not self.stop_flag.wait(0.1):
                timed("/metrics", {"Authorization": self.exporter.auth}, scrapes)

        threads = [threading.Thread(target=probe)] + ([threading.Thread(target=scrape)] if self.scrape else [])
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        send.send((healthy, scrapes, failed[0]))

    def finish(self):
        self.stop_flag.set()
        healthy, scrapes, failed = self.receive.recv()
        self.process.join()
        figures = {"healthy_ms": percentiles(healthy), "probe_failures": failed}
        if self.scrape:
            figures["scrape_ms"] = percentiles(scrapes)
        return figures


def percentiles(samples):
    if not samples:
        return None
    samples = sorted(samples)
    pick = lambda q: round(samples[min(len(samples) - 1, int(q * len(samples)))], 1)
    return {"n": len(samples), "p50": pick(0.5), "p99": pick(0.99), "max": round(samples[-1], 1)}


def flood(workers, seconds, work):
    """Runs `work()` in a loop on `workers` threads for `seconds`; returns the status codes it returned."""
    codes = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop():
        while time.monotonic() < deadline:
            code = work()
            with lock:
                codes[code] = codes.get(code, 0) + 1

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {str(k): v for k, v in sorted(codes.items())}


def events(first_id, n, organisation=lambda i: 1):
    return "[" + ",".join(
        f'{{"id":{i},"event_type":{{"id":3,"description":"Update location"}},"event_source":{{"id":0}},'
        f'"event_severity":{{"id":0}},"organisation":{{"id":{organisation(i)},"name":"Org {organisation(i)}"}},'
        f'"timestamp":"2026-12-01T00:00:00.000Z","description":"attack"}}'
        for i in range(first_id, first_id + n)) + "]"


