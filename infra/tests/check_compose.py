#!/usr/bin/env python3
"""Checks infra/compose.yaml beyond its JSON schema (run.sh validates the schema, raw and interpolated).

* Interpolation with infra/.env.example succeeds (every required variable has a documented value), and the
  variables the file uses are exactly the ones .env.example documents; the interpolated file is written to
  the path given as the first argument for the schema check.
* Each profile starts exactly the expected services, and no started service depends on one that is not started
  (Compose refuses that), for every single profile and for all of them together.
* Every service has a restart policy, a healthcheck (one-shot jobs excepted, and only when others wait for their
  completion), CPU and memory limits and at least one network; published ports are bound to 127.0.0.1 except the
  proxy's; databases are only on internal networks; CyberVPN services build from existing Dockerfiles and probe
  the listen variable their image sets; Caddyfile placeholders and Alertmanager secrets reach their containers;
  infra/.env is git-ignored and no env file is committed.

Compose's profile rule, reimplemented here: a service runs when it has no `profiles` or one of them is active.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

INFRA = Path(__file__).resolve().parent.parent
ROOT = INFRA.parent

BASE = {"postgres", "redis", "remnawave", "remnawave-db", "remnawave-redis"}
EXPECTED = {
    (): BASE,
    ("api",): BASE | {"migrate", "api"},
    ("worker",): BASE | {"migrate", "worker", "scheduler"},
    ("bot",): BASE | {"migrate", "api", "bot"},
    ("monitoring",): BASE | {"prometheus", "grafana", "alertmanager"},
    ("proxy",): BASE | {"caddy"},
    ("subscription",): BASE | {"remnawave-subscription-page"},
}
ALL_PROFILES = ("api", "worker", "bot", "monitoring", "proxy", "subscription")
EXPECTED[ALL_PROFILES] = set().union(*EXPECTED.values())

CYBERVPN = {"api": "api", "migrate": "api", "worker": "worker", "scheduler": "scheduler", "bot": "bot"}
DATABASES = {"postgres", "redis", "remnawave-db", "remnawave-redis"}
PUBLIC = {"caddy"}

errors: list[str] = []


def fail(message: str) -> None:
    errors.append(message)


def parse_dotenv(path: Path) -> dict[str, str]:
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line)
        if not match:
            fail(f"{path.name}:{number}: not NAME=value: {line}")
            continue
        name, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if name in values:
            fail(f"{path.name}:{number}: {name} is defined twice")
        values[name] = value
    return values


VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text: str, env: dict[str, str], used: set[str]) -> str:
    """Compose interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}, ${VAR:+r}, ${VAR+r}."""

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3) or ""
        used.add(name)
        value = env.get(name)
        if op in (":-", "-"):
            return value if (value if op == ":-" else value is not None) else interpolate(arg, env, used)
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                fail(f"required variable {name} has no value in .env.example ({arg})")
                return ""
            return value
        if op in (":+", "+"):
            return interpolate(arg, env, used) if (value if op == ":+" else value is not None) else ""
        return value or ""

    return VAR.sub(one, text)


def walk_strings(node, fn):
    if isinstance(node, dict):
        return {walk_strings(k, fn): walk_strings(v, fn) for k, v in node.items()}
    if isinstance(node, list):
        return [walk_strings(v, fn) for v in node]
    if isinstance(node, str):
        return fn(node)
    return node


def enabled(services: dict, profiles: tuple[str, ...]) -> set[str]:
    return {name for name, svc in services.items() if not svc.get("profiles") or set(svc["profiles"]) & set(profiles)}


def depends(svc: dict) -> dict[str, dict]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return deps


def check_profiles(services: dict) -> None:
    for profiles, expected in EXPECTED.items():
        label = "+".join(profiles) or "(no profile)"
        started = enabled(services, profiles)
        if started != expected:
            fail(f"profile {label}: starts {sorted(started)}, expected {sorted(expected)} "
                 f"(extra {sorted(started - expected)}, missing {sorted(expected - started)})")
        for name in sorted(started):
            for dep, spec in depends(services[name]).items():
                if dep not in services:
                    fail(f"{name} depends on undefined service {dep}")
                elif dep not in started and spec.get("required", True):
                    fail(f"profile {label}: {name} depends on {dep}, which that profile does not start")
        print(f"  profile {label:<46} {len(started):2} services: {' '.join(sorted(started - BASE)) or 'base only'}")


def check_service(name: str, svc: dict, networks: dict) -> None:
    if svc.get("restart") not in ("unless-stopped", "always", "on-failure", "no"):
        fail(f"{name}: restart policy missing or unknown: {svc.get('restart')!r}")
    health = svc.get("healthcheck")
    one_shot = svc.get("restart") == "no"
    if one_shot:
        if not (health and health.get("disable")):
            fail(f"{name}: a one-shot job (restart: no) should disable its healthcheck explicitly")
    elif not health or health.get("disable") or not health.get("test"):
        fail(f"{name}: no healthcheck")
    else:
        for key in ("interval", "timeout", "retries"):
            if key not in health:
                fail(f"{name}: healthcheck without {key}")
    limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    if not limits.get("cpus") or not limits.get("memory"):
        fail(f"{name}: no CPU and memory limits (deploy.resources.limits)")
    nets = svc.get("networks") or []
    if not nets:
        fail(f"{name}: attached to no explicit network")
    for net in nets:
        if net not in networks:
            fail(f"{name}: undefined network {net}")
    if name in DATABASES:
        for net in nets:
            if not (networks.get(net) or {}).get("internal"):
                fail(f"{name}: a database must be only on internal networks, not {net}")
        if svc.get("ports"):
            fail(f"{name}: a database publishes no port")
    for port in svc.get("ports") or []:
        text = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published', '')}"
        if name in PUBLIC:
            continue
        if not str(text).startswith("127.0.0.1:"):
            fail(f"{name}: port {text} must be bound to 127.0.0.1 (only the proxy is public)")
    if name in PUBLIC and not svc.get("ports"):
        fail(f"{name}: the proxy publishes no port")
    if ":" not in str(svc.get("image", "")):
        fail(f"{name}: image without a tag: {svc.get('image')}")


def check_cybervpn(name: str, svc: dict) -> None:
    image = CYBERVPN[name]
    dockerfile = ROOT / "infra/docker" / f"{image}.Dockerfile"
    build = svc.get("build") or {}
    if (INFRA / build.get("context", "")).resolve() != ROOT or build.get("dockerfile") != f"infra/docker/{image}.Dockerfile":
        fail(f"{name}: build must be context .. and dockerfile infra/docker/{image}.Dockerfile")
    if not dockerfile.exists():
        fail(f"{name}: {dockerfile} does not exist")
        return
    test = (svc.get("healthcheck") or {}).get("test")
    if test and not (svc.get("healthcheck") or {}).get("disable"):
        if test[:2] != ["CMD", "healthcheck"]:
            fail(f"{name}: healthcheck should run the image's `healthcheck` probe: {test}")
        elif not re.search(rf"^ENV {test[2]}=|^\s+{test[2]}=", dockerfile.read_text(), re.M):
            fail(f"{name}: healthcheck reads {test[2]}, which {dockerfile.name} does not set")
    for key in svc.get("environment") or {}:
        if key.startswith("CYBERVPN_") and not re.fullmatch(r"CYBERVPN_[A-Z0-9_]+", key):
            fail(f"{name}: odd variable name {key}")


def check_placeholders(services: dict) -> None:
    caddyfile = (INFRA / "caddy/Caddyfile").read_text()
    caddy_env = set((services["caddy"].get("environment") or {}))
    for var, default in re.findall(r"\{\$([A-Z_][A-Z0-9_]*)(:[^}]*)?\}", caddyfile):
        if not default and var not in caddy_env:
            fail(f"Caddyfile uses {{${var}}} without a default, but compose does not pass {var} to caddy")
    mounts = " ".join(services["caddy"].get("volumes") or [])
    if "./caddy/Caddyfile:/etc/caddy/Caddyfile" not in mounts:
        fail("caddy: the Caddyfile is not mounted at /etc/caddy/Caddyfile")
    template = (INFRA / "alertmanager/alertmanager.yml").read_text()
    am_env = set(services["alertmanager"].get("environment") or {})
    for var in re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", template):
        if var not in am_env:
            fail(f"alertmanager.yml uses ${{{var}}}, which compose does not pass to alertmanager")


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    raw = (INFRA / "compose.yaml").read_text()
    env = parse_dotenv(INFRA / ".env.example")
    used: set[str] = set()
    doc = yaml.safe_load(raw)
    rendered = walk_strings(doc, lambda s: interpolate(s, env, used))
    for secret in (doc.get("secrets") or {}).values():
        if "environment" in secret:
            used.add(secret["environment"])
            if not env.get(secret["environment"]):
                fail(f"secret from {secret['environment']}, which .env.example leaves empty")
    if undocumented := used - env.keys():
        fail(f"compose.yaml uses variables .env.example does not document: {sorted(undocumented)}")
    if unused := env.keys() - used:
        fail(f".env.example documents variables compose.yaml does not use: {sorted(unused)}")
    print(f"  {len(used)} variables, all documented in .env.example and all used")

    services = rendered["services"]
    networks = rendered.get("networks") or {}
    check_profiles(services)
    for name, svc in services.items():
        check_service(name, svc, networks)
        if svc.get("restart") == "no" and not any(
                depends(other).get(name, {}).get("condition") == "service_completed_successfully"
                for other in services.values()):
            fail(f"{name}: a one-shot job nobody waits for (depends_on ... service_completed_successfully)")
        if name in CYBERVPN:
            check_cybervpn(name, svc)
    check_placeholders(services)
    for net in ("backend", "panel", "monitoring"):
        if not (networks.get(net) or {}).get("internal"):
            fail(f"network {net} must be internal")
    print(f"  {len(services)} services: restart policy, healthcheck, limits, networks, ports checked")

    ignored = subprocess.run(["git", "check-ignore", "-q", "infra/.env"], cwd=ROOT).returncode == 0
    if not ignored:
        fail("infra/.env (the secrets) is not git-ignored")
    tracked = subprocess.run(["git", "ls-files", "--", "infra/.env", "infra/**/.env"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    if tracked:
        fail(f"env files with secrets are committed: {tracked}")

    if out:
        out.write_text(yaml.safe_dump(rendered, sort_keys=False))
    for message in errors:
        print(f"  FAIL {message}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
