#!/usr/bin/env python3
"""Generates the CyberVPN Grafana dashboards (infra/grafana/dashboards/*.json).

    python3 infra/grafana/dashboards.py           write the JSON files
    python3 infra/grafana/dashboards.py --check   fail if the committed JSON differs from this script's output

Every query uses only metrics the services export (see infra/tests/check_metrics.py, which scrapes the real
binaries) plus Prometheus' own `up`/`ALERTS` and the recording rules of infra/prometheus/rules. Job metrics carry
the job type as `task` (renamed from `job` at scrape time, infra/prometheus/prometheus.yml). Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
API = 'job="cybervpn-api"'
NOT_PROBES = 'route!~"/health|/ready|/metrics"'
RATE = "$__rate_interval"


class Dashboard:
    """Lays panels out left to right in rows of 24 grid units."""

    def __init__(self, uid: str, title: str, description: str, variables: list[dict] | None = None):
        self.uid, self.title, self.description = uid, title, description
        self.variables = variables or []
        self.panels: list[dict] = []
        self.x = self.y = self.row_height = 0

    def _place(self, w: int, h: int) -> dict:
        if self.x + w > 24:
            self.x, self.y = 0, self.y + self.row_height
            self.row_height = 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_height = max(self.row_height, h)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        self.panels.append(
            {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": self._place(24, 1)}
        )
        self.x, self.y, self.row_height = 0, self.y + 1, 0

    def _panel(self, kind: str, title: str, description: str, w: int, h: int, **extra) -> None:
        panel = {"type": kind, "title": title, "description": description, "gridPos": self._place(w, h)}
        panel.update(extra)
        self.panels.append(panel)

    def timeseries(self, title, description, targets, unit="short", w=12, h=8, stack=False, bars=False):
        custom = {"drawStyle": "bars" if bars else "line", "fillOpacity": 60 if bars else 10, "lineWidth": 1}
        if stack:
            custom["stacking"] = {"mode": "normal", "group": "A"}
        self._panel(
            "timeseries", title, description, w, h,
            datasource=DS,
            targets=_targets(targets),
            fieldConfig={"defaults": {"unit": unit, "min": 0, "custom": custom}, "overrides": []},
            options={"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
                     "tooltip": {"mode": "multi", "sort": "desc"}},
        )

    def stat(self, title, description, targets, unit="short", w=6, h=4, thresholds=None):
        steps = [{"color": "green", "value": None}] + [
            {"color": color, "value": value} for value, color in (thresholds or [])
        ]
        self._panel(
            "stat", title, description, w, h,
            datasource=DS,
            targets=_targets(targets),
            fieldConfig={"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                         "overrides": []},
            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                     "colorMode": "value", "graphMode": "area", "textMode": "auto"},
        )

    def table(self, title, description, targets, w=12, h=8):
        self._panel(
            "table", title, description, w, h,
            datasource=DS,
            targets=[dict(t, format="table", instant=True) for t in _targets(targets)],
            fieldConfig={"defaults": {}, "overrides": []},
            options={"showHeader": True},
            transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}}}],
        )

    def text(self, title, markdown, w=24, h=4):
        self._panel("text", title, "", w, h, options={"mode": "markdown", "content": markdown})

    def json(self) -> dict:
        for number, panel in enumerate(self.panels, start=1):
            panel["id"] = number
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["cybervpn"],
            "timezone": "browser",
            "editable": False,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"},
            "annotations": {"list": []},
            "links": [{"type": "dashboards", "tags": ["cybervpn"], "asDropdown": True, "title": "CyberVPN"}],
            "templating": {"list": self.variables},
            "panels": self.panels,
        }


def _targets(targets) -> list[dict]:
    """`targets` is one (expr, legend) pair or a list of them."""
    if isinstance(targets, tuple):
        targets = [targets]
    return [
        {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
        for i, (expr, legend) in enumerate(targets)
    ]


def variable(name: str, label: str, query: str) -> dict:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }


def quantile(q: float, metric: str, selector: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}[{RATE}])))"


def overview() -> Dashboard:
    d = Dashboard(
        "cybervpn-overview", "CyberVPN / Platform overview",
        "Requests, errors and latency of the api by route; targets up; firing alerts.",
        [variable("route", "Route", f"label_values(http_requests_total{{{API}}}, route)")],
    )
    sel = f'{API},route=~"$route"'
    d.row("Now")
    d.stat("Requests / s", "All api requests, probes included.",
           (f"sum(rate(http_requests_total{{{API}}}[{RATE}]))", "requests/s"), unit="reqps")
    d.stat("5xx ratio", "Share of api answers that were 5xx (probes excluded); alert ApiHighErrorRatio at 5 %.",
           (f'sum(rate(http_requests_total{{{API},{NOT_PROBES},status=~"5.."}}[{RATE}])) / '
            f"sum(rate(http_requests_total{{{API},{NOT_PROBES}}}[{RATE}]))", "5xx"),
           unit="percentunit", thresholds=[(0.01, "orange"), (0.05, "red")])
    d.stat("p99 latency", "99th percentile of api response time (probes excluded); alert ApiHighLatencyP99 at 1 s.",
           (quantile(0.99, "http_request_duration_seconds", f"{API},{NOT_PROBES}", "job"), "p99"),
           unit="s", thresholds=[(0.5, "orange"), (1, "red")])
    d.stat("Targets up", "Scrape targets answering, per job (api, worker, scheduler, bot, panel).",
           ('sum by (job) (up{job=~"cybervpn-.*|remnawave"})', "{{job}}"))
    d.row("Traffic")
    d.timeseries("Requests by route", "Requests per second by route template.",
                 (f"sum by (route) (rate(http_requests_total{{{sel}}}[{RATE}]))", "{{route}}"), unit="reqps")
    d.timeseries("Requests by status", "Requests per second by HTTP status.",
                 (f"sum by (status) (rate(http_requests_total{{{sel}}}[{RATE}]))", "{{status}}"),
                 unit="reqps", stack=True)
    d.row("Errors")
    d.timeseries("5xx ratio by route", "Share of each route's answers that were 5xx.",
                 (f'sum by (route) (rate(http_requests_total{{{sel},status=~"5.."}}[{RATE}])) / '
                  f"sum by (route) (rate(http_requests_total{{{sel}}}[{RATE}]))", "{{route}}"),
                 unit="percentunit")
    d.timeseries("4xx by route and status", "Client errors per second: auth failures, validation, not found.",
                 (f'sum by (route, status) (rate(http_requests_total{{{sel},status=~"4.."}}[{RATE}]))',
                  "{{status}} {{route}}"), unit="reqps")
    d.row("Latency")
    d.timeseries("p99 latency by route", "99th percentile of response time per route.",
                 (quantile(0.99, "http_request_duration_seconds", sel, "route"), "{{route}}"), unit="s")
    d.timeseries("Latency percentiles", "p50, p95 and p99 of the selected routes together.",
                 [(quantile(q, "http_request_duration_seconds", sel, "job"), f"p{int(q * 100)}")
                  for q in (0.5, 0.95, 0.99)], unit="s")
    d.row("Staff WebSockets")
    d.timeseries("Open staff WebSockets", "Live-view connections per api replica.",
                 (f"sum by (instance) (ws_connections{{{API}}})", "{{instance}}"), stack=True)
    d.timeseries("WebSockets closed by reason", "Closes per hour: client, silent (no pong), too_slow, flood, "
                 "protocol, shutdown (the api stopping).",
                 (f"sum by (reason) (increase(ws_closed_total{{{API}}}[1h]))", "{{reason}}"), bars=True)
    d.row("Alerts")
    d.table("Firing alerts", "Alerts Prometheus currently fires (rules in infra/prometheus/rules).",
            ('sum by (alertname, severity) (ALERTS{alertstate="firing"})', ""), w=24, h=6)
    return d


def business() -> Dashboard:
    d = Dashboard(
        "cybervpn-business", "CyberVPN / Business",
        "Payments by gateway and status, revenue, active subscriptions, checkouts, trials, sign-ups and "
        "provisioning.",
    )
    credited = 'webhooks_received_total{outcome="applied",source!="remnawave"}'
    d.row("Payments")
    d.stat("Payments credited", "Payments credited from a gateway notice in the selected range (Stars included; "
           "credits found by the payments sweep are not counted).",
           (f"sum(increase({credited}[$__range]))", "credited"), w=8)
    d.stat("Bot invoices created", "Invoices the bot created in the selected range.",
           ('sum(increase(bot_payments_total{status="created"}[$__range]))', "created"), w=8)
    d.stat("Subscriptions provisioned", "Panel provisionings that succeeded in the selected range.",
           ('sum(increase(jobs_succeeded_total{task="provision_subscription"}[$__range]))', "provisioned"), w=8)
    d.timeseries("Payments credited by gateway", "Credited payments per hour, by gateway.",
                 (f"sum by (source) (increase({credited}[1h]))", "{{source}}"), bars=True, stack=True)
    d.timeseries("Payment notices by gateway and outcome",
                 "Gateway notices per second: applied, duplicate, review, unknown, ignored, failed, malformed, "
                 "bad_signature.",
                 ('sum by (source, outcome) (rate(webhooks_received_total{source!="remnawave"}'
                  f"[{RATE}]))", "{{source}} {{outcome}}"), unit="reqps")
    d.timeseries("Bot payments by gateway and status", "Payments started and confirmed in the bot, per hour.",
                 ("sum by (gateway, status) (increase(bot_payments_total[1h]))", "{{gateway}} {{status}}"),
                 bars=True)
    d.timeseries("Checkouts through the api", "Payment and subscription creation requests per second, by status.",
                 (f'sum by (route, status) (rate(http_requests_total{{{API},method="POST",'
                  f'route=~"/api/v1/payments|/api/v1/payments/crypto/invoice|/api/v1/subscriptions"}}[{RATE}]))',
                  "{{route}} {{status}}"), unit="reqps")
    d.row("Customers")
    d.timeseries("Trials", "Trials activated through the api, and /trial commands in the bot, per hour.",
                 [(f'sum(increase(http_requests_total{{{API},method="POST",route="/api/v1/trial/activate",'
                   f'status=~"2.."}}[1h]))', "activated (api)"),
                  ('sum(increase(bot_commands_total{command="trial"}[1h]))', "/trial (bot)")], bars=True)
    d.timeseries("Sign-ups", "Accounts registered through the api, and /start commands in the bot, per hour.",
                 [(f'sum(increase(http_requests_total{{{API},method="POST",route="/api/v1/auth/register",'
                   f'status=~"2.."}}[1h]))', "registered (api)"),
                  ('sum(increase(bot_commands_total{command="start"}[1h]))', "/start (bot)")], bars=True)
    d.row("Revenue and subscriptions (read from the database by every api replica; max() picks one)")
    d.stat("Customers", "Customers not deleted.", ("max(business_customers)", "customers"), w=8)
    d.stat("Active subscriptions", "Subscriptions serving now, all tiers.",
           ("sum(max by (tier) (business_active_subscriptions))", "active"), w=8)
    d.stat("Trials taken", "Free trials ever taken.", ("max(business_trials)", "trials"), w=8)
    d.table("Revenue in the selected range", "Completed payments less refunds, in minor units of each currency "
            "(cents, kopecks; Telegram Stars are whole stars), by gateway.",
            ("max by (currency, provider) (delta(business_revenue_minor[$__range]))", "{{currency}} {{provider}}"))
    d.timeseries("Active subscriptions by tier", "Subscriptions serving now; `trial` are those without a plan.",
                 ("max by (tier) (business_active_subscriptions)", "{{tier}}"), stack=True)
    d.timeseries("Revenue per day by currency and gateway", "Completed payments less refunds over the past 24 h, "
                 "in minor units.",
                 ("max by (currency, provider) (delta(business_revenue_minor[1d]))", "{{currency}} {{provider}}"))
    d.timeseries("Completed payments per day by gateway", "Completed (not refunded) payments over the past 24 h.",
                 ("sum by (provider) (max by (currency, provider) (delta(business_payments_completed[1d])))",
                  "{{provider}}"))
    d.row("Growth programmes")
    d.timeseries("Invite codes by status", "Codes available to hand out, redeemed by friends, and expired or "
                 "withdrawn.", ("max by (status) (business_invites)", "{{status}}"), stack=True)
    d.timeseries("Customers by loyalty level", "Customers at Silver (90 paid days in a row), Gold (180) and "
                 "Platinum (360), grace period included.",
                 ("max by (level) (business_loyalty_customers)", "{{level}}"), stack=True)
    return d


def jobs() -> Dashboard:
    d = Dashboard(
        "cybervpn-jobs", "CyberVPN / Queue and jobs",
        "Job queue depth, throughput, failures and duration by job type; dead letters; the scheduler lease.",
        [variable("task", "Job", "label_values(jobs_enqueued_total, task)")],
    )
    sel = 'task=~"$task"'
    d.row("Queue")
    d.timeseries("Queue depth", "Jobs waiting (ready or delayed) per job type; alert TaskQueueBacklog above 100.",
                 (f"max by (task) (jobs_queue_depth{{{sel}}})", "{{task}}"))
    d.timeseries("Dead letters", "Jobs that failed for good, waiting at /api/v1/admin/jobs/dead.",
                 ("max(jobs_dead_letter)", "dead letters"))
    d.row("Throughput")
    d.timeseries("Enqueued", "Jobs pushed per second (re-drives included, retries not).",
                 (f"sum by (task) (rate(jobs_enqueued_total{{{sel}}}[{RATE}]))", "{{task}}"), unit="ops")
    d.timeseries("Succeeded", "Attempts that completed the job, per second.",
                 (f"sum by (task) (rate(jobs_succeeded_total{{{sel}}}[{RATE}]))", "{{task}}"), unit="ops")
    d.timeseries("Retried", "Failed attempts scheduled to run again, per second.",
                 (f"sum by (task) (rate(jobs_retried_total{{{sel}}}[{RATE}]))", "{{task}}"), unit="ops")
    d.timeseries("Dead-lettered", "Jobs moved to the dead-letter set, per second.",
                 (f"sum by (task) (rate(jobs_failed_total{{{sel}}}[{RATE}]))", "{{task}}"), unit="ops")
    d.timeseries("Failed attempt ratio", "Failed attempts / all attempts over 10 minutes (recording rules); "
                 "alert HighTaskErrorRate above 25 %.",
                 (f"task:job_attempts_failed:rate10m{{{sel}}} / task:job_attempts:rate10m{{{sel}}}", "{{task}}"),
                 unit="percentunit")
    d.timeseries("Duration p95", "95th percentile of handler run time per attempt.",
                 (quantile(0.95, "job_duration_seconds", sel, "task"), "{{task}}"), unit="s")
    d.row("Scheduler and workers")
    d.timeseries("Scheduler lease", "1 for the replica holding the lease; exactly one should.",
                 ("scheduler_is_leader", "{{instance}}"), w=8)
    d.timeseries("Periodic jobs enqueued", "Periodic jobs the leading scheduler enqueued, per hour.",
                 (f"sum by (task) (increase(scheduler_ticks_total{{{sel}}}[1h]))", "{{task}}"), w=8, bars=True)
    d.timeseries("Workers up", "Worker replicas answering their scrape.",
                 ('sum(up{job="cybervpn-worker"})', "workers"), w=8)
    return d


def bot() -> Dashboard:
    d = Dashboard(
        "cybervpn-bot", "CyberVPN / Telegram bot",
        "Updates, commands, Bot API calls, errors and payments of the Telegram bot.",
    )
    d.row("Activity")
    d.stat("Bot up", "Bot replicas answering their scrape.", ('sum(up{job="cybervpn-bot"})', "up"), w=8)
    d.stat("Updates / s", "Telegram updates received (polling or webhook).",
           (f"sum(rate(bot_updates_total[{RATE}]))", "updates/s"), w=8)
    d.stat("Bot API error ratio", "Share of Bot API calls that did not answer 200 (403: blocked by the user, 429: "
           "rate limited, transport: no answer).",
           (f'sum(rate(bot_api_requests_total{{status!="200"}}[{RATE}])) / '
            f"sum(rate(bot_api_requests_total[{RATE}]))", "errors"),
           unit="percentunit", w=8, thresholds=[(0.05, "orange"), (0.2, "red")])
    d.timeseries("Updates", "Telegram updates per second.",
                 (f"sum(rate(bot_updates_total[{RATE}]))", "updates"), unit="ops")
    d.timeseries("Commands", "Commands handled per second, by command (`unknown` for anything else).",
                 (f"sum by (command) (rate(bot_commands_total[{RATE}]))", "/{{command}}"), unit="ops", stack=True)
    d.row("Telegram Bot API")
    d.timeseries("Bot API requests by method", "Calls to the Bot API per second, by method.",
                 (f"sum by (method) (rate(bot_api_requests_total[{RATE}]))", "{{method}}"), unit="reqps")
    d.timeseries("Bot API failures by method and status", "Calls that did not answer 200, per second.",
                 (f'sum by (method, status) (rate(bot_api_requests_total{{status!="200"}}[{RATE}]))',
                  "{{method}} {{status}}"), unit="reqps")
    d.row("Errors and payments")
    d.timeseries("Errors by type", "telegram, rpc (the api's gRPC), gateway, throttled, forbidden, webhook_secret, "
                 "malformed_update.",
                 (f"sum by (type) (rate(bot_errors_total[{RATE}]))", "{{type}}"), unit="ops")
    d.timeseries("Payments by gateway and status", "Payments started (created, failed) and Stars confirmations "
                 "and refunds in the bot, per hour.",
                 ("sum by (gateway, status) (increase(bot_payments_total[1h]))", "{{gateway}} {{status}}"),
                 bars=True)
    return d


def panel() -> Dashboard:
    d = Dashboard(
        "cybervpn-panel", "CyberVPN / Panel, servers and outside services",
        "The Remnawave panel as the platform sees it (API calls, node jobs, webhooks) and the other outside "
        "services (payment gateways, Telegram).",
    )
    rw = 'service="remnawave"'
    node_jobs = 'task=~"node_sync|node_health_check|server_configs|server_geolocation|bandwidth_stats|' \
                'user_traffic_stats|full_reconcile"'
    d.row("Remnawave panel")
    d.stat("Panel metrics scrape", "1 while Prometheus scrapes the panel's metrics port.",
           ('sum(up{job="remnawave"})', "up"), w=8)
    d.stat("Panel API failure ratio", "Share of panel calls ending in 5xx, 429, timeout, connection or decode "
           "errors; alert HighExternalAPIFailureRate above 20 %.",
           (f'sum(rate(external_requests_total{{{rw},status=~"5..|429|timeout|connection|decode"}}[{RATE}])) / '
            f"sum(rate(external_requests_total{{{rw}}}[{RATE}]))", "failures"),
           unit="percentunit", w=8, thresholds=[(0.05, "orange"), (0.2, "red")])
    d.stat("Panel webhooks / s", "Signed panel webhooks received by the api.",
           (f'sum(rate(webhooks_received_total{{source="remnawave"}}[{RATE}]))', "webhooks/s"), w=8)
    d.timeseries("Panel API calls by operation and status", "Requests to the panel per second.",
                 (f"sum by (operation, status) (rate(external_requests_total{{{rw}}}[{RATE}]))",
                  "{{operation}} {{status}}"), unit="reqps")
    d.timeseries("Panel API latency p95 by operation", "95th percentile per attempt.",
                 (quantile(0.95, "external_request_duration_seconds", rw, "operation"), "{{operation}}"), unit="s")
    d.timeseries("Node and sync jobs", "Successful (+) and dead-lettered (−) node, traffic and reconciliation "
                 "jobs per hour.",
                 [(f"sum by (task) (increase(jobs_succeeded_total{{{node_jobs}}}[1h]))", "{{task}} ok"),
                  (f"-sum by (task) (increase(jobs_failed_total{{{node_jobs}}}[1h]))", "{{task}} dead")],
                 bars=True)
    d.timeseries("Panel webhooks by outcome", "applied, ignored, bad_signature.",
                 (f'sum by (outcome) (rate(webhooks_received_total{{source="remnawave"}}[{RATE}]))', "{{outcome}}"),
                 unit="reqps")
    d.row("Payment gateways and Telegram")
    d.timeseries("Calls by service and status", "Requests to CryptoBot, Stripe, YooKassa and Telegram per second.",
                 (f'sum by (service, status) (rate(external_requests_total{{service!="remnawave"}}[{RATE}]))',
                  "{{service}} {{status}}"), unit="reqps")
    d.timeseries("Latency p95 by service", "95th percentile per attempt.",
                 (quantile(0.95, "external_request_duration_seconds", 'service!="remnawave"', "service"),
                  "{{service}}"), unit="s")
    d.row("VPN servers (as of the last node sync, read from the database by the api)")
    d.timeseries("Servers by status", "online, warning, offline, maintenance.",
                 ("max by (status) (business_servers)", "{{status}}"), stack=True)
    d.timeseries("Users online per server", "Users connected to each node at the last sync.",
                 ("max by (server) (business_server_users_online)", "{{server}}"), stack=True)
    return d


DASHBOARDS = {
    "overview.json": overview,
    "business.json": business,
    "jobs.json": jobs,
    "bot.json": bot,
    "panel.json": panel,
}


def render() -> dict[str, str]:
    return {name: json.dumps(build().json(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    rendered = render()
    if sys.argv[1:] == ["--check"]:
        stale = [name for name, text in rendered.items()
                 if not (OUT / name).exists() or (OUT / name).read_text() != text]
        extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in rendered)
        for name in stale:
            print(f"infra/grafana/dashboards/{name} differs from dashboards.py: run python3 infra/grafana/dashboards.py")
        for name in extra:
            print(f"infra/grafana/dashboards/{name} is not generated by dashboards.py")
        return 1 if stale or extra else 0
    OUT.mkdir(exist_ok=True)
    for name, text in rendered.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(rendered)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
