#!/usr/bin/env python3
"""Every metric the dashboards and alert rules query is one the services really export.

Where the names come from, most trusted first:

1. **Scraped** from the real binaries in target/debug, started on free loopback ports: the standalone
   `cybervpn` (api + worker + scheduler in one process, SQLite in a temporary directory) in front of
   `cybervpn-panel-fake`, with a customer provisioned through the admin API, bad-signature webhooks and a few
   scheduler ticks; `cybervpn-bot` against a loopback fake of the Telegram Bot API (defined below) and the
   standalone's gRPC, fed a /start, a /trial and a Stars payment; `cybervpn-worker` and `cybervpn-scheduler`
   on a scratch PostgreSQL database and a Redis key prefix. Every /metrics and /health is fetched, and the images'
   `healthcheck` probe is run against each service's real port.
2. **Declared in the source** (`Opts::new("…")`, `HistogramOpts::new("…")`, `IntGauge::new("…")`, … in crates/
   and services/). The Prometheus client omits a labelled metric until a label set is observed, so a metric
   whose code path the scrape did not reach (a bot error kind, a refund) appears only here; the report marks it.
3. **Prometheus' own**: `up`, `ALERTS`, `scrape_*`, and the recording rules of infra/prometheus/rules.

Also checked: label names in selectors and `by (…)` exist on the metric (the exported `job` label is `task` in
Prometheus, see prometheus.yml; `job`/`instance` are target labels; `le` belongs to histogram buckets);
`_bucket`/`_sum`/`_count` are used only on histograms; a selector pinned to `job="cybervpn-<service>"` names a
metric that service registers (from which registries each service's source creates, confirmed by its scrape);
the synthetic series in the promtool rule tests are named after exported metrics too.

Usage: check_metrics.py (from run.sh, with the venv's Python: needs promql-parser and PyYAML)
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BIN = Path(os.environ.get("CYBERVPN_BIN_DIR", ROOT / "target/debug"))
BINARIES = ("cybervpn", "cybervpn-api", "cybervpn-bot", "cybervpn-worker", "cybervpn-scheduler", "cybervpn-panel-fake")
PG_URL = os.environ.get("CYBERVPN_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CYBERVPN_TEST_REDIS_URL", "redis://127.0.0.1:6379")
PROMETHEUS_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped",
                     "scrape_samples_post_metric_relabeling", "scrape_series_added"}
TARGET_LABELS = {"job", "instance"}
# Source directory → the registry it defines; services register `telemetry` (Metrics::new) and what their
# source names below.
FAMILY_SOURCES = {"telemetry": "crates/telemetry/src", "jobs": "crates/jobs/src",
                  "scheduler": "services/scheduler/src", "bot": "services/bot/src",
                  "worker": "services/worker/src", "api": "services/api/src"}
FAMILY_REGISTRATION = {"jobs": "JobMetrics::register", "scheduler": "SchedulerMetrics::register",
                       "bot": "BotMetrics::register", "worker": "BackupMetrics::register",
                       "api": "WsMetrics::register"}
SERVICES = {"cybervpn-api": "services/api/src", "cybervpn-worker": "services/worker/src",
            "cybervpn-scheduler": "services/scheduler/src", "cybervpn-bot": "services/bot/src"}

TOKEN = "123456:infra-test-token"
GRPC_TOKEN = "infra-test-grpc-token-0123456789abcdef"
PANEL_TOKEN = "infra-test-panel-token"
PANEL_SECRET = "infratestwebhooksecret0123456789abcdef"

errors: list[str] = []


def fail(message: str) -> None:
    errors.append(message)


# --- what the services export -------------------------------------------------------------------------------

class Metric:
    def __init__(self):
        self.type = None
        self.labels: set[str] = set()
        self.scraped_from: set[str] = set()
        self.declared_in: set[str] = set()
        self.families: set[str] = set()
        self.labels_known = False


def parse_exposition(text: str, source: str, known: dict[str, Metric]) -> None:
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            known.setdefault(name, Metric()).type = kind
            known[name].scraped_from.add(source)
        elif line and not line.startswith("#"):
            match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
            if not match:
                fail(f"{source}: unparsable exposition line {line!r}")
                continue
            name = match.group(1)
            base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
            if base not in types:
                fail(f"{source}: sample {name} without a # TYPE line")
                continue
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', match.group(3) or "")) - {"le"}
            known[base].labels |= labels
            known[base].labels_known = True


def declared_metrics(known: dict[str, Metric]) -> None:
    """Names, types and label names from the Rust source: the constructor call, then the first `&[…]` label list
    before the statement's `)?`, else the label list of the local closure the name is passed to (the jobs crate's
    `counter` closure). Unlabelled constructors (IntGauge::new, IntCounter::new, …) declare no labels."""
    call = re.compile(r'\b(Opts::new|HistogramOpts::new|IntGauge::new|IntCounter::new|Gauge::new|Counter::new|'
                      r'(?<![:\w])[a-z_]+)\(\s*"([a-z_:][a-z0-9_:]*)",\s*"[^"]*"')
    closure = re.compile(r'let (\w+) = \|[^|]*\|\s*\w+::new\(\s*Opts::new\(\s*name,\s*help\s*\),\s*&\[([^\]]*)\]')
    for path in sorted(list(ROOT.glob("crates/*/src/**/*.rs")) + list(ROOT.glob("services/*/src/**/*.rs"))):
        text = path.read_text()
        relative = path.relative_to(ROOT).as_posix()
        closures = {name: set(re.findall(r'"([a-z_]+)"', labels)) for name, labels in closure.findall(text)}
        for match in call.finditer(text):
            constructor, name = match.groups()
            if constructor not in ("Opts::new", "HistogramOpts::new", "IntGauge::new", "IntCounter::new",
                                   "Gauge::new", "Counter::new") and constructor not in closures \
                    and constructor != "vec":
                continue
            metric = known.setdefault(name, Metric())
            metric.declared_in.add(relative)
            if constructor == "HistogramOpts::new":
                metric.type = metric.type or "histogram"
            statement = text[match.end():text.find(")?", match.end()) + 2]
            inline = re.search(r"&\[([^\]]*)\]", statement)
            if inline:
                metric.labels |= set(re.findall(r'"([a-z_]+)"', inline.group(1)))
                metric.labels_known = True
            elif constructor in closures:
                metric.labels |= closures[constructor]
                metric.labels_known = True
            elif constructor in ("IntGauge::new", "IntCounter::new", "Gauge::new", "Counter::new"):
                metric.labels_known = True
            for family, directory in FAMILY_SOURCES.items():
                if relative.startswith(directory):
                    metric.families.add(family)


def service_families() -> dict[str, set[str]]:
    out = {}
    for service, directory in SERVICES.items():
        source = " ".join(p.read_text() for p in (ROOT / directory).glob("**/*.rs"))
        out[service] = {"telemetry"} | {f for f, call in FAMILY_REGISTRATION.items() if call in source}
        if "Metrics::new()" not in source:
            fail(f"{service}: {directory} no longer calls Metrics::new(); update check_metrics.py")
    return out


# --- running the binaries -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_call(method: str, url: str, body=None, headers=None, timeout=10):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    request = urllib.request.Request(url, data=data, method=method, headers={
        **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return None, b""


def wait_until(check, what: str, seconds: float = 30) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.1)
    fail(f"timed out waiting for {what}")
    return False


class FakeTelegram:
    """The Bot API methods the bot calls at start and while answering, on loopback, with queued updates."""

    def __init__(self):
        self.updates: list[dict] = []
        self.calls: list[str] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                method = self.path.rsplit("/", 1)[-1]
                try:
                    params = json.loads(raw) if raw.startswith(b"{") else {}
                except ValueError:
                    params = {}
                fake.calls.append(method)
                result = fake.answer(method, params)
                body = json.dumps({"ok": True, "result": result}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *args: None  # a long poll cut off when the bot stops
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, method: str, params: dict):
        chat = {"id": 4242, "type": "private", "first_name": "Neo"}
        if method == "getMe":
            return {"id": 1, "is_bot": True, "first_name": "CyberVPN", "username": "cybervpn_infra_bot"}
        if method == "getUpdates":
            deadline = time.time() + min(float(params.get("timeout") or 0), 1.0)
            while time.time() < deadline:
                with self.lock:
                    if self.updates:
                        batch, self.updates = self.updates, []
                        return batch
                time.sleep(0.05)
            return []
        if method in ("sendMessage", "sendPhoto", "sendDocument", "editMessageText", "sendInvoice"):
            return {"message_id": len(self.calls), "date": int(time.time()), "chat": chat, "text": "ok"}
        return True

    def push(self, message: dict) -> None:
        user = {"id": 4242, "is_bot": False, "first_name": "Neo", "language_code": "en"}
        with self.lock:
            self.updates.append({"update_id": len(self.calls) + len(self.updates) + 1, "message": {
                "message_id": 1, "date": int(time.time()), "from": user,
                "chat": {"id": 4242, "type": "private", "first_name": "Neo"}, **message}})

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Processes:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(args, env={**base_env(), **env}, stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.workdir)
        self.running.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def stop(self):
        for name, proc in reversed(self.running):
            if proc.poll() is None:
                proc.terminate()
        for name, proc in self.running:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "RUST_BACKTRACE")
    return {k: v for k, v in os.environ.items() if k in keep} | {"CYBERVPN_LOG_LEVEL": "warn",
                                                                  "CYBERVPN_LOG_FORMAT": "json"}


def probe(listen_var: str, listen: str, path: str) -> bool:
    """The images' HEALTHCHECK command, run against the real service."""
    result = subprocess.run(["bash", INFRA / "docker/healthcheck.sh", listen_var, path],
                            env={"PATH": os.environ["PATH"], listen_var: listen}, capture_output=True, text=True)
    return result.returncode == 0


def scrape(name: str, url: str, known: dict[str, Metric]) -> None:
    status, body = http_call("GET", url)
    if status != 200:
        fail(f"{name}: GET {url} answered {status}")
        return
    parse_exposition(body.decode(), name, known)


def psql(database_url: str, sql: str) -> None:
    subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-qAt", database_url, "-c", sql], check=True,
                   capture_output=True, text=True)


def run_services(workdir: Path, known: dict[str, Metric]) -> None:
    missing = [b for b in BINARIES if not (BIN / b).exists()]
    if missing:
        fail(f"binaries missing in {BIN}: {missing} (run `cargo build --workspace --bins`)")
        return
    procs = Processes(workdir)
    telegram = FakeTelegram()
    ports = {name: free_port() for name in ("api", "grpc", "panel", "bot", "worker", "scheduler")}
    api = f"http://127.0.0.1:{ports['api']}"
    scratch_db = f"cybervpn_infra_{uuid.uuid4().hex[:12]}"
    pg_base = PG_URL.rsplit("/", 1)[0]
    created_db = False
    try:
        procs.start("panel-fake", [str(BIN / "cybervpn-panel-fake"), "--listen", f"127.0.0.1:{ports['panel']}",
                                   "--token", PANEL_TOKEN, "--webhook-url", f"{api}/api/v1/webhooks/remnawave",
                                   "--webhook-secret", PANEL_SECRET], {})
        wait_until(lambda: http_call("GET", f"http://127.0.0.1:{ports['panel']}/api/system/health",
                                     headers={"Authorization": f"Bearer {PANEL_TOKEN}", "X-Forwarded-For": "127.0.0.1",
                                              "X-Forwarded-Proto": "https"})[0] is not None, "the panel fake")
        platform = {
            "REMNAWAVE_URL": f"http://127.0.0.1:{ports['panel']}", "REMNAWAVE_TOKEN": PANEL_TOKEN,
            "REMNAWAVE_WEBHOOK_SECRET": PANEL_SECRET, "REMNAWAVE_SQUADS": "Default-Squad",
        }
        telegram_env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE": telegram.url}
        # No Telegram token for the standalone: with one it would poll the fake itself and take the bot's updates.
        standalone_env = {
            **platform, "CYBERVPN_DATA_DIR": str(workdir / "data"), "CYBERVPN_API_LISTEN": f"127.0.0.1:{ports['api']}",
            "CYBERVPN_GRPC_LISTEN": f"127.0.0.1:{ports['grpc']}", "CYBERVPN_GRPC_BOT_TOKEN": GRPC_TOKEN,
            "CYBERVPN_SCHEDULER_NODE_SYNC_SECS": "1", "CYBERVPN_SCHEDULER_HEALTH_CHECK_SECS": "1",
            "CYBERVPN_SCHEDULER_PAYMENTS_SECS": "1", "CYBERVPN_SCHEDULER_DISABLE_EXPIRED_SECS": "1",
        }
        standalone = procs.start("cybervpn", [str(BIN / "cybervpn"), "serve"], standalone_env)
        if not wait_until(lambda: standalone.poll() is not None or http_call("GET", f"{api}/health")[0] == 200,
                          "the standalone api") or standalone.poll() is not None:
            fail(f"cybervpn did not start:\n{procs.log('cybervpn')}")
            return
        exercise_api(api, standalone_env, workdir)

        bot = procs.start("cybervpn-bot", [str(BIN / "cybervpn-bot")], {
            **telegram_env,
            "CYBERVPN_GRPC_URL": f"http://127.0.0.1:{ports['grpc']}", "CYBERVPN_GRPC_BOT_TOKEN": GRPC_TOKEN,
            "CYBERVPN_BOT_LISTEN": f"127.0.0.1:{ports['bot']}", "CYBERVPN_BOT_POLL_TIMEOUT_SECS": "1"})
        if wait_until(lambda: bot.poll() is not None or "getUpdates" in telegram.calls, "the bot's first getUpdates") \
                and bot.poll() is None:
            telegram.push({"text": "/start", "entities": [{"type": "bot_command", "offset": 0, "length": 6}]})
            telegram.push({"text": "/trial", "entities": [{"type": "bot_command", "offset": 0, "length": 6}]})
            telegram.push({"successful_payment": {
                "currency": "XTR", "total_amount": 100, "invoice_payload": str(uuid.uuid4()),
                "telegram_payment_charge_id": "infra-test-charge", "provider_payment_charge_id": "infra-test"}})
            wait_until(lambda: not telegram.updates and telegram.calls.count("sendMessage") >= 2,
                       "the bot to answer its updates")
        else:
            fail(f"cybervpn-bot did not start:\n{procs.log('cybervpn-bot')}")

        # The separate worker and scheduler, on PostgreSQL and Redis as in production.
        database_url = f"{pg_base}/{scratch_db}"
        psql(PG_URL, f'CREATE DATABASE "{scratch_db}"')
        created_db = True
        redis_env = {"REDIS_URL": REDIS_URL, "CYBERVPN_REDIS_KEY_PREFIX": f"infra-test-{scratch_db}:"}
        migrate = subprocess.run([str(BIN / "cybervpn-api"), "migrate"], env={**base_env(), "DATABASE_URL": database_url},
                                 capture_output=True, text=True, timeout=120)
        if migrate.returncode:
            fail(f"cybervpn-api migrate failed: {migrate.stderr[-2000:]}")
            return
        worker = procs.start("cybervpn-worker", [str(BIN / "cybervpn-worker")], {
            **platform, **telegram_env, **redis_env, "DATABASE_URL": database_url,
            "CYBERVPN_WORKER_LISTEN": f"127.0.0.1:{ports['worker']}"})
        scheduler = procs.start("cybervpn-scheduler", [str(BIN / "cybervpn-scheduler")], {
            **redis_env, "CYBERVPN_SCHEDULER_LISTEN": f"127.0.0.1:{ports['scheduler']}",
            "CYBERVPN_SCHEDULER_PAYMENTS_SECS": "1"})

        services = {
            "cybervpn": ("CYBERVPN_API_LISTEN", ports["api"], "/health", "/metrics", standalone),
            "cybervpn-bot": ("CYBERVPN_BOT_LISTEN", ports["bot"], "/health", "/metrics", bot),
            "cybervpn-worker": ("CYBERVPN_WORKER_LISTEN", ports["worker"], "/health", "/metrics", worker),
            "cybervpn-scheduler": ("CYBERVPN_SCHEDULER_LISTEN", ports["scheduler"], "/health", "/metrics", scheduler),
        }
        for name, (var, port, health, _, proc) in services.items():
            listen = f"0.0.0.0:{port}"
            if not wait_until(lambda: proc.poll() is not None or probe(var, listen, health), f"{name} healthy") \
                    or proc.poll() is not None:
                fail(f"{name} is not healthy (the images' healthcheck probe on {health}):\n{procs.log(name)}")
        if probe("CYBERVPN_API_LISTEN", f"127.0.0.1:{ports['api']}", "/ready") is False:
            fail("cybervpn: GET /ready is not 200")
        wait_until(lambda: b"scheduler_ticks_total" in http_call("GET", f"{api}/metrics")[1]
                   and b"external_requests_total" in http_call("GET", f"{api}/metrics")[1],
                   "the standalone scheduler to tick and the worker to call the panel", 20)
        wait_until(lambda: b"scheduler_is_leader 1" in http_call("GET", f"http://127.0.0.1:{ports['scheduler']}/metrics")[1],
                   "the scheduler binary to take the lease", 20)
        for name, (_, port, _, metrics_path, proc) in services.items():
            if proc.poll() is None:
                scrape(name, f"http://127.0.0.1:{port}{metrics_path}", known)
    finally:
        procs.stop()
        telegram.stop()
        if created_db:
            try:
                psql(PG_URL, f'DROP DATABASE IF EXISTS "{scratch_db}" WITH (FORCE)')
            except subprocess.CalledProcessError as err:
                print(f"  (could not drop scratch database {scratch_db}: {err.stderr.strip()})")
        keys = subprocess.run(["redis-cli", "-u", REDIS_URL, "--scan", "--pattern", f"infra-test-{scratch_db}:*"],
                              capture_output=True, text=True).stdout.split()
        for start in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "-u", REDIS_URL, "DEL", *keys[start:start + 500]], capture_output=True)


def exercise_api(api: str, env: dict[str, str], workdir: Path) -> None:
    for path in ("/health", "/ready", "/api/v1/plans", "/api/v1/no-such-route"):
        http_call("GET", api + path)
    # Forged panel webhooks (bad_signature) and a staff-driven provisioning (panel calls, provision job).
    http_call("POST", f"{api}/api/v1/webhooks/remnawave", body={"event": "user.modified"},
              headers={"X-Remnawave-Signature": "00" * 32})
    created = subprocess.run([str(BIN / "cybervpn"), "admin", "create", "--email", "ops@infra.test",
                              "--role", "super_admin"], env={**base_env(), **env}, capture_output=True, text=True,
                             cwd=workdir, timeout=60)
    if created.returncode:
        fail(f"cybervpn admin create failed: {created.stderr[-1500:]}")
        return
    status, body = http_call("POST", f"{api}/api/v1/admin/auth/login",
                             body={"email": "ops@infra.test", "password": created.stdout.strip()})
    staff = json.loads(body).get("access_token") if status == 200 else None
    status, body = http_call("POST", f"{api}/api/v1/auth/register",
                             body={"email": "neo@infra.test", "password": "follow the white rabbit"})
    customer = json.loads(body).get("id") if status in (200, 201) else None
    if not staff or not customer:
        fail(f"could not sign in staff or register a customer (status {status}: {body[:200]!r})")
        return
    status, _ = http_call("POST", f"{api}/api/v1/users/{customer}/extend", body={"days": 30},
                          headers={"Authorization": f"Bearer {staff}"})
    if status != 200:
        fail(f"extending the customer answered {status}")
    wait_until(lambda: b'provision_subscription' in http_call("GET", f"{api}/metrics")[1]
               and b'jobs_succeeded_total{job="provision_subscription"}' in http_call("GET", f"{api}/metrics")[1],
               "the provisioning job to succeed", 20)


# --- what the dashboards and rules query ----------------------------------------------------------------------

def substitute_grafana(expr: str) -> str:
    expr = expr.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$__interval", "1m")
    return re.sub(r"\$\{?[A-Za-z_]+\}?", ".*", expr)


def queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted((INFRA / "grafana/dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{path.name}: {panel['title']}", substitute_grafana(target["expr"])))
        for var in dashboard.get("templating", {}).get("list", []):
            query = var.get("query", {}).get("query", "")
            match = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_]+)\)", query)
            if not match:
                fail(f"{path.name}: variable {var.get('name')} is not label_values(selector, label): {query}")
                continue
            out.append((f"{path.name}: variable {var['name']}", match.group(1)))
            out.append((f"{path.name}: variable {var['name']} label", f'count by ({match.group(2)}) ({match.group(1)})'))
    for path in sorted((INFRA / "prometheus/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((f"{path.name}: {rule.get('alert') or rule.get('record')}", rule["expr"]))
    for path in sorted((INFRA / "prometheus/tests").glob("*.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for series in test.get("input_series", []):
                out.append((f"{path.name}: {test.get('name')}", series["series"]))
    return out


def recording_rules() -> set[str]:
    names = set()
    for path in (INFRA / "prometheus/rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


def selectors(node, groupings: list[tuple[set[str], list]]):
    """Yields (name, {label: (op, value)}) for every vector selector; records `by` groupings with their inputs."""
    kind = type(node).__name__
    if kind == "VectorSelector":
        matchers = {m.name: (str(m.op), m.value) for m in node.matchers.matchers}
        name = node.name or matchers.pop("__name__", (None, None))[1]
        yield name, matchers
        return
    if kind == "MatrixSelector":
        yield from selectors(node.vector_selector, groupings)
        return
    if kind == "AggregateExpr":
        inner = list(selectors(node.expr, groupings))
        modifier = node.modifier
        if modifier is not None and str(modifier).startswith("by"):
            groupings.append((set(modifier.labels), inner))
        yield from inner
        if node.param is not None:
            yield from selectors(node.param, groupings)
        return
    for attr in ("expr", "lhs", "rhs"):
        if hasattr(node, attr) and getattr(node, attr) is not None:
            yield from selectors(getattr(node, attr), groupings)
    if kind == "Call":
        for arg in node.args:
            yield from selectors(arg, groupings)


def resolve(name: str, known: dict[str, Metric], rules: set[str]):
    """(metric or None, base name, allowed labels or None when unknown)."""
    if name in PROMETHEUS_SERIES or name in rules:
        return "prometheus", name, None
    if name in known:
        return known[name], name, known[name].labels if known[name].labels_known else None
    base, _, suffix = name.rpartition("_")
    if suffix in ("bucket", "sum", "count") and base in known:
        if known[base].type != "histogram":
            fail(f"{name}: {base} is a {known[base].type}, not a histogram")
        if not known[base].labels_known:
            return known[base], base, None
        return known[base], base, known[base].labels | ({"le"} if suffix == "bucket" else set())
    return None, name, None


def prometheus_labels(labels: set[str]) -> set[str]:
    """Exported labels as stored in Prometheus: `job` becomes `task` (prometheus.yml), target labels added."""
    return {"task" if label == "job" else label for label in labels} | TARGET_LABELS


def check_queries(known: dict[str, Metric], families: dict[str, set[str]]) -> dict[str, int]:
    rules = recording_rules()
    used: dict[str, int] = defaultdict(int)
    for origin, expr in queries():
        try:
            ast = promql_parser.parse(expr)
        except Exception as err:  # noqa: BLE001 (the parser raises plain exceptions)
            fail(f"{origin}: PromQL does not parse: {err}: {expr}")
            continue
        groupings: list[tuple[set[str], list]] = []
        found = list(selectors(ast, groupings))
        for name, matchers in found:
            if name is None:
                fail(f"{origin}: selector without a metric name: {expr}")
                continue
            metric, base, labels = resolve(name, known, rules)
            if metric is None:
                fail(f"{origin}: {name} is not exported by any service (nor a Prometheus or recording-rule series)")
                continue
            used[base] += 1
            if labels is not None:
                allowed = prometheus_labels(labels) | ({"le"} if name.endswith("_bucket") else set())
                if bad := set(matchers) - allowed:
                    fail(f"{origin}: {name} has no label {sorted(bad)} (it has {sorted(allowed)})")
            job = matchers.get("job")
            if isinstance(metric, Metric) and job and job[0] == "MatchOp.Equal" and job[1] in families:
                if not (metric.families & families[job[1]]):
                    fail(f"{origin}: {name} is pinned to job={job[1]}, which does not register it")
        for by, inputs in groupings:
            available = set()
            for name, _ in inputs:
                metric, _, labels = resolve(name, known, rules) if name else (None, None, None)
                if labels is None:
                    available = None
                    break
                available |= prometheus_labels(labels) | ({"le"} if name.endswith("_bucket") else set())
            if available is not None and (bad := by - available):
                fail(f"{origin}: groups by {sorted(bad)}, which {sorted({n for n, _ in inputs})} do not carry")
    return used


def main() -> int:
    known: dict[str, Metric] = {}
    declared_metrics(known)
    families = service_families()
    with tempfile.TemporaryDirectory(prefix="cybervpn-infra-") as workdir:
        try:
            run_services(Path(workdir), known)
        except Exception as err:  # noqa: BLE001
            fail(f"running the services failed: {err!r}")
            for log in sorted(Path(workdir).glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-2000:]}")
        if errors or os.environ.get("INFRA_TEST_SHOW_LOGS"):
            for log in sorted(Path(workdir).glob("*.log")):
                print(f"  --- {log.name} (last lines)\n{log.read_text()[-1500:]}")
    for name, metric in known.items():
        if metric.scraped_from and not metric.declared_in:
            fail(f"{name} is exported (by {sorted(metric.scraped_from)}) but check_metrics.py finds no declaration")
        for service in metric.scraped_from & {"cybervpn-worker", "cybervpn-scheduler", "cybervpn-bot"}:
            if not metric.families & families[service]:
                fail(f"{service} exports {name}, which the source-derived registry map does not give it")
    used = check_queries(known, families)

    print(f"  {'metric':<36} {'uses':>4}  evidence")
    for name in sorted(set(known) | set(used)):
        metric = known.get(name)
        if metric is None:
            evidence = "Prometheus / recording rule"
        elif metric.scraped_from:
            evidence = "scraped from " + ", ".join(sorted(metric.scraped_from))
        else:
            evidence = "declared in source only (no sample observed): " + ", ".join(sorted(metric.declared_in))
        print(f"  {name:<36} {used.get(name, 0):>4}  {evidence}")
    unused = sorted(n for n in known if not used.get(n))
    if unused:
        print(f"  exported but not on any dashboard or alert: {', '.join(unused)}")
    for message in errors:
        print(f"  FAIL {message}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
