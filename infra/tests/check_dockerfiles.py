#!/usr/bin/env python3
"""Rules for infra/docker/*.Dockerfile that hadolint does not know (run.sh runs hadolint first).

Per image: multi-stage, the builder on the toolchain rust-toolchain.toml pins, a Debian slim runtime that installs
nothing but CA certificates (no compiler, no build tools), the binary copied from the builder, a numeric non-root
USER, EXPOSE matching the listen address the image sets, a HEALTHCHECK that runs the bundled probe on that
address, an ENTRYPOINT running the right binary, and no secret-looking ARG or ENV anywhere. The build context's
.dockerignore must keep secrets and build output out while letting the copied scripts in.

The two scripts every image carries are run here for real: `healthcheck` against a loopback HTTP server that
answers 200 then 503, and `entrypoint`, which must drop empty variables and keep the others.
"""

from __future__ import annotations

import http.server
import re
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "infra/docker"
IMAGES = {
    "api": ("cybervpn-api", "CYBERVPN_API_LISTEN", {8080, 50051}),
    "worker": ("cybervpn-worker", "CYBERVPN_WORKER_LISTEN", {9091}),
    "scheduler": ("cybervpn-scheduler", "CYBERVPN_SCHEDULER_LISTEN", {9093}),
    "bot": ("cybervpn-bot", "CYBERVPN_BOT_LISTEN", {9092}),
    "standalone": ("cybervpn", "CYBERVPN_API_LISTEN", {8080}),
}
RUNTIME_PACKAGES = {"ca-certificates"}
# Runtime packages one image needs beyond those: pg_dump for the worker's daily backup.
EXTRA_RUNTIME_PACKAGES = {"worker": {"postgresql-client-17"}}
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|make|cmake|build-essential|pkg-config|cargo|rustc|rustup|git|"
                         r"libssl-dev|protobuf-compiler)\b")
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE|CREDENTIAL|_KEY\b|API_KEY)", re.I)

errors: list[str] = []


def fail(message: str) -> None:
    errors.append(message)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip())
            for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)]


def check_image(name: str, binary: str, listen_var: str, ports: set[int], channel: str) -> None:
    path = DOCKER / f"{name}.Dockerfile"
    if not path.exists():
        fail(f"{path.name} is missing")
        return
    ins = instructions(path.read_text())
    stages: list[list[tuple[str, str]]] = []
    for kind, args in ins:
        if kind == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((kind, args))
    froms = [args for kind, args in ins if kind == "FROM"]
    if len(stages) < 2:
        fail(f"{path.name}: not multi-stage")
        return
    if not froms[0].startswith(f"rust:{channel}-"):
        fail(f"{path.name}: builder is {froms[0]!r}, rust-toolchain.toml pins {channel}")
    if f"RUSTUP_TOOLCHAIN={channel}" not in " ".join(a for k, a in stages[0] if k == "ENV"):
        fail(f"{path.name}: the chef stage must set RUSTUP_TOOLCHAIN={channel}")
    if not any(k == "RUN" and "cargo chef cook" in a for stage in stages for k, a in stage):
        fail(f"{path.name}: dependencies are not cooked in their own layer (cargo chef cook)")
    if not any(k == "RUN" and f"--bin {binary} " in a + " " and "--locked" in a for stage in stages for k, a in stage):
        fail(f"{path.name}: no `cargo build --locked ... --bin {binary}`")

    final = stages[-1]
    base = final[0][1]
    if not re.match(r"(debian:[a-z]+-slim|gcr\.io/distroless/)", base):
        fail(f"{path.name}: runtime base {base!r} is not Debian slim or distroless")
    for kind, args in final:
        if kind == "RUN":
            for install in re.findall(r"apt-get install ([^&;|]*)", args):
                packages = {p for p in install.split() if not p.startswith("-")}
                allowed = RUNTIME_PACKAGES | EXTRA_RUNTIME_PACKAGES.get(name, set())
                if extra := packages - allowed:
                    fail(f"{path.name}: runtime installs {sorted(extra)}; only {sorted(allowed)} belong there")
            if BUILD_TOOLS.search(args.replace("ca-certificates", "")):
                fail(f"{path.name}: runtime stage mentions a build tool: {args[:80]}")
        if kind == "COPY" and "--from=" not in args and not re.search(r"infra/docker/\w+\.sh ", args):
            fail(f"{path.name}: runtime copies from the build context: {args}")
    if f"COPY --from=builder /out/{binary} /usr/local/bin/{binary}" not in [f"{k} {a}" for k, a in final]:
        fail(f"{path.name}: the runtime does not copy /out/{binary} from the builder")
    users = [a for k, a in final if k == "USER"]
    if not users or not re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", users[-1]):
        fail(f"{path.name}: the last USER must be a numeric non-root uid[:gid], got {users[-1:] or 'none'}")
    env = " ".join(a for k, a in final if k == "ENV")
    listen = re.search(rf"{listen_var}=([^\s]+)", env)
    if not listen:
        fail(f"{path.name}: runtime does not set {listen_var}")
    exposed = {int(p.split("/")[0]) for k, a in final if k == "EXPOSE" for p in a.split()}
    if exposed != ports:
        fail(f"{path.name}: EXPOSE {sorted(exposed)}, expected {sorted(ports)}")
    if listen and int(listen.group(1).rsplit(":", 1)[1]) not in exposed:
        fail(f"{path.name}: {listen_var} listens on a port that is not exposed")
    health = [a for k, a in final if k == "HEALTHCHECK"]
    if not health or f'CMD ["healthcheck", "{listen_var}", "/health"]' not in health[-1]:
        fail(f"{path.name}: HEALTHCHECK must run the bundled probe on {listen_var} /health")
    if f'ENTRYPOINT ["entrypoint", "{binary}"]' not in [f"{k} {a}" for k, a in final]:
        fail(f"{path.name}: ENTRYPOINT must run {binary} through the entrypoint script")
    for stage in stages:
        for kind, args in stage:
            if kind in ("ARG", "ENV"):
                for var in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=?", args.split()[0] if kind == "ARG" else args):
                    if SECRET_NAME.search(var):
                        fail(f"{path.name}: {kind} {var} looks like a secret; secrets come at run time")


def check_dockerignore() -> None:
    lines = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    if lines[:1] != ["*"]:
        fail(".dockerignore should start with `*` and list what the build needs")
    for needed in ("!Cargo.toml", "!Cargo.lock", "!crates/", "!services/", "!migrations/", "!proto/",
                   "!infra/docker/entrypoint.sh", "!infra/docker/healthcheck.sh", "!rust-toolchain.toml"):
        if needed not in lines:
            fail(f".dockerignore does not let {needed[1:]} into the build context")
    for secret in ("**/.env", "**/target"):
        if secret not in lines:
            fail(f".dockerignore should exclude {secret} even inside included directories")
    members = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    for member in members:
        if f"!{member.split('/')[0]}/" not in lines and f"!{member}/" not in lines:
            fail(f".dockerignore leaves workspace member {member} out of the build context")


class Answer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802
        self.send_response(Answer.status if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def check_scripts() -> None:
    for script in ("healthcheck.sh", "entrypoint.sh"):
        if subprocess.run(["bash", "-n", DOCKER / script]).returncode:
            fail(f"{script}: bash syntax error")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    probe = lambda *args, env=None: subprocess.run(  # noqa: E731
        ["bash", DOCKER / "healthcheck.sh", *args], env=env, capture_output=True, text=True, timeout=10)
    try:
        if probe(str(port), "/health").returncode != 0:
            fail("healthcheck.sh: a 200 answer is not healthy")
        if probe("LISTEN", "/health", env={"LISTEN": f"0.0.0.0:{port}"}).returncode != 0:
            fail("healthcheck.sh: cannot follow a listen variable with a wildcard address")
        if probe("LISTEN", "/missing", env={"LISTEN": f"127.0.0.1:{port}"}).returncode == 0:
            fail("healthcheck.sh: a 404 answer is healthy")
        Answer.status = 503
        if probe(str(port), "/health").returncode == 0:
            fail("healthcheck.sh: a 503 answer is healthy")
    finally:
        server.shutdown()
        server.server_close()
    if probe(str(port), "/health").returncode == 0:
        fail("healthcheck.sh: a closed port is healthy")
    out = subprocess.run(["env", "-i", "EMPTY=", "KEPT=value", "bash", DOCKER / "entrypoint.sh", "env"],
                         capture_output=True, text=True).stdout.splitlines()
    if "KEPT=value" not in out or any(l.startswith("EMPTY=") for l in out):
        fail(f"entrypoint.sh: should drop EMPTY and keep KEPT, got {out}")


def main() -> int:
    channel = tomllib.loads((ROOT / "rust-toolchain.toml").read_text())["toolchain"]["channel"]
    for name, (binary, listen_var, ports) in IMAGES.items():
        check_image(name, binary, listen_var, ports, channel)
    extra = {p.name for p in DOCKER.glob("*.Dockerfile")} - {f"{n}.Dockerfile" for n in IMAGES}
    if extra:
        fail(f"unchecked Dockerfiles: {sorted(extra)}")
    check_dockerignore()
    check_scripts()
    print(f"  {len(IMAGES)} Dockerfiles (toolchain {channel}), .dockerignore, healthcheck.sh and entrypoint.sh")
    for message in errors:
        print(f"  FAIL {message}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
