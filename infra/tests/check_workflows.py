#!/usr/bin/env python3
"""What .github/workflows must contain beyond the GitHub workflow schema (run.sh validates the schema).

ci.yml has the jobs the project relies on — lint (fmt, clippy), test (nextest under cargo-llvm-cov with
PostgreSQL and Redis service containers), infra (this suite), docker-build (buildx with the GitHub Actions layer
cache, one matrix entry per infra/docker/*.Dockerfile), security (cargo-deny, cargo-audit) — and an `all-checks`
job that needs every other job and runs even when one fails. Workflows declare their token permissions, and
the toolchain they install is the one rust-toolchain.toml pins.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
errors: list[str] = []


def fail(message: str) -> None:
    errors.append(message)


def steps_text(job: dict) -> str:
    return "\n".join(str(step.get("run", "")) + " " + str(step.get("uses", "")) + " " + str(step.get("with", ""))
                     for step in job.get("steps", []))


def main() -> int:
    channel = tomllib.loads((ROOT / "rust-toolchain.toml").read_text())["toolchain"]["channel"]
    workflows = {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / ".github/workflows").glob("*.yml"))}
    for name, workflow in workflows.items():
        if "permissions" not in workflow:
            fail(f"{name}: no top-level permissions (the token would get the repository default)")
    ci = workflows.get("ci.yml")
    if not ci:
        fail("ci.yml is missing")
        return report()
    jobs = ci["jobs"]
    if ci.get("env", {}).get("RUST_TOOLCHAIN") != channel:
        fail(f"ci.yml: RUST_TOOLCHAIN is {ci.get('env', {}).get('RUST_TOOLCHAIN')}, rust-toolchain.toml pins {channel}")
    expected = {
        "lint": ["cargo fmt --all -- --check", "cargo clippy --workspace --all-targets", "-D warnings"],
        "test": ["cargo llvm-cov nextest", "cargo-nextest", "cargo-llvm-cov", "--doc"],
        "infra": ["cargo build --workspace --bins", "bash infra/tests/run.sh"],
        "docker-build": ["docker/setup-buildx-action", "docker/build-push-action", "type=gha",
                         "infra/docker/${{ matrix.image }}.Dockerfile"],
        "security": ["EmbarkStudios/cargo-deny-action", "cargo audit"],
    }
    for job, needles in expected.items():
        if job not in jobs:
            fail(f"ci.yml: job {job} is missing")
            continue
        text = steps_text(jobs[job])
        for needle in needles:
            if needle not in text:
                fail(f"ci.yml: job {job} does not run {needle!r}")
    for job in ("test", "infra"):
        services = set((jobs.get(job) or {}).get("services", {}))
        if services != {"postgres", "redis"}:
            fail(f"ci.yml: job {job} needs postgres and redis service containers, has {sorted(services)}")
    images = sorted(p.name.removesuffix(".Dockerfile") for p in (ROOT / "infra/docker").glob("*.Dockerfile"))
    matrix = sorted(((jobs.get("docker-build") or {}).get("strategy") or {}).get("matrix", {}).get("image", []))
    if matrix != images:
        fail(f"ci.yml: docker-build matrix {matrix} differs from infra/docker/*.Dockerfile {images}")
    aggregator = jobs.get("all-checks") or {}
    if set(aggregator.get("needs", [])) != set(jobs) - {"all-checks"}:
        fail(f"ci.yml: all-checks needs {aggregator.get('needs')}, expected every other job {sorted(set(jobs) - {'all-checks'})}")
    if aggregator.get("if") != "always()":
        fail("ci.yml: all-checks must run `if: always()` so a failed or skipped job fails it")
    if "result == \"success\"" not in steps_text(aggregator):
        fail("ci.yml: all-checks must fail unless every needed job succeeded")
    return report(len(workflows))


def report(count: int = 0) -> int:
    print(f"  {count} workflows: jobs, service containers, build matrix, aggregator, permissions, toolchain")
    for message in errors:
        print(f"  FAIL {message}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
