#!/usr/bin/env python3
"""Grafana provisioning and dashboards are well-formed (check_metrics.py checks the metric names they query).

* infra/grafana/dashboards/*.json are valid JSON and exactly what infra/grafana/dashboards.py generates.
* Each dashboard has a unique uid and title, unique panel ids, panels inside the 24-column grid that do not
  overlap, and every query panel has targets with unique refIds and a PromQL expression that parses.
* Every datasource reference is the provisioned Prometheus datasource's uid; the dashboards provider reads the
  directory Compose mounts the JSON into; the five dashboards the platform needs exist.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import promql_parser
import yaml

INFRA = Path(__file__).resolve().parents[1]
GRAFANA = INFRA / "grafana"
REQUIRED = {"cybervpn-overview", "cybervpn-business", "cybervpn-jobs", "cybervpn-bot", "cybervpn-panel"}
errors: list[str] = []


def fail(message: str) -> None:
    errors.append(message)


def main() -> int:
    drift = subprocess.run([sys.executable, GRAFANA / "dashboards.py", "--check"], capture_output=True, text=True)
    if drift.returncode:
        fail(drift.stdout.strip() or drift.stderr.strip())

    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    uids = {ds["uid"] for ds in datasources if ds["type"] == "prometheus"}
    if len(uids) != 1:
        fail(f"expected one provisioned Prometheus datasource, found {sorted(uids)}")
    if any(ds.get("url") != "http://prometheus:9090" for ds in datasources):
        fail("the datasource must point at the Compose service prometheus:9090")
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/cybervpn.yml").read_text())["providers"][0]
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    if f"./grafana/dashboards:{provider['options']['path']}:ro" not in mounts:
        fail(f"the dashboards provider reads {provider['options']['path']}, which compose does not mount")
    if "./grafana/provisioning:/etc/grafana/provisioning:ro" not in mounts:
        fail("compose does not mount the provisioning directory at /etc/grafana/provisioning")

    seen_uids, seen_titles, panels_total = set(), set(), 0
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        try:
            dashboard = json.loads(path.read_text())
        except ValueError as err:
            fail(f"{path.name}: invalid JSON: {err}")
            continue
        for key, seen in (("uid", seen_uids), ("title", seen_titles)):
            if not dashboard.get(key) or dashboard[key] in seen:
                fail(f"{path.name}: missing or duplicate {key} {dashboard.get(key)!r}")
            seen.add(dashboard.get(key))
        if not isinstance(dashboard.get("schemaVersion"), int):
            fail(f"{path.name}: no schemaVersion")
        ids, cells = set(), set()
        for panel in dashboard.get("panels", []):
            panels_total += 1
            where = f"{path.name}: panel {panel.get('id')} {panel.get('title')!r}"
            if panel.get("id") in ids:
                fail(f"{where}: duplicate id")
            ids.add(panel.get("id"))
            pos = panel.get("gridPos") or {}
            if not all(isinstance(pos.get(k), int) for k in "xywh") or pos["x"] + pos["w"] > 24 or pos["w"] < 1:
                fail(f"{where}: bad gridPos {pos}")
                continue
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    if (x, y) in cells:
                        fail(f"{where}: overlaps another panel at ({x}, {y})")
                        break
                    cells.add((x, y))
            if panel["type"] in ("row", "text"):
                continue
            refs = [t.get("refId") for t in panel.get("targets", [])]
            if not refs or len(refs) != len(set(refs)):
                fail(f"{where}: no targets or duplicate refIds {refs}")
            for ref in [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]:
                if not ref or ref.get("uid") not in uids:
                    fail(f"{where}: datasource {ref} is not the provisioned {sorted(uids)}")
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                expr = expr.replace("$__rate_interval", "5m").replace("$__range", "1h")
                expr = expr.replace("$route", ".*").replace("$task", ".*")
                try:
                    promql_parser.parse(expr)
                except Exception as err:  # noqa: BLE001
                    fail(f"{where}: PromQL does not parse: {err}")
        for var in dashboard.get("templating", {}).get("list", []):
            if (var.get("datasource") or {}).get("uid") not in uids:
                fail(f"{path.name}: variable {var.get('name')} uses another datasource")
    if missing := REQUIRED - seen_uids:
        fail(f"dashboards missing: {sorted(missing)}")
    print(f"  {len(seen_uids)} dashboards, {panels_total} panels, provisioning and Compose mounts")
    for message in errors:
        print(f"  FAIL {message}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
