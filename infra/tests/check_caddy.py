#!/usr/bin/env python3
"""Runs infra/caddy/Caddyfile for real on loopback and checks its routing (run.sh runs `caddy validate` first).

The three sites are served over plain HTTP on one free port (site names are env placeholders, set here to
http://*.localhost:PORT), in front of stub upstreams that report what reached them. Checked:
/metrics is never proxied; the api gets its routes, webhooks (1 MB body limit) and WebSocket upgrades (101 and
the upgraded stream pass through); only POSTs under /telegram/ reach the bot; a client's X-Forwarded-For is
replaced by its real address (the api's YooKassa source check relies on it); security headers are set and
`Server` is hidden; the panel gets X-Forwarded-For/-Proto and refuses addresses outside PANEL_ALLOWED_NETWORKS;
the subscription page gets its host; the Telegram secret header never reaches the access log.

Usage: check_caddy.py [CADDY_BINARY]
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CADDYFILE = Path(__file__).resolve().parents[1] / "caddy/Caddyfile"
SECRET = "telegram-secret-must-not-be-logged"
errors: list[str] = []


def fail(message: str) -> None:
    errors.append(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stub(name: str) -> http.server.ThreadingHTTPServer:
    """An upstream that answers every request with what it received, and upgrades WebSocket handshakes."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.headers.get("Upgrade", "").lower() == "websocket":
                self.send_response(101)
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.end_headers()
                self.wfile.write(b"upgraded:" + name.encode())
                self.wfile.flush()
                self.close_connection = True
                return
            payload = json.dumps({
                "upstream": name, "method": self.command, "path": self.path, "body_length": len(body),
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Server", "stub-upstream")
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.handle_error = lambda *args: None  # Caddy cuts oversized bodies off mid-request.
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def request(port, host, method, path, body=None, headers=None, source="127.0.0.1"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    try:
        seen = json.loads(data)
    except ValueError:
        seen = None
    return response.status, {k.lower(): v for k, v in response.getheaders()}, seen


def expect(label, got, want):
    if got != want:
        fail(f"{label}: got {got!r}, expected {want!r}")


def run_checks(port: int, hosts: dict[str, str]) -> None:
    api, panel, sub = hosts["api"], hosts["panel"], hosts["sub"]

    for path in ("/metrics", "/metrics/extra"):
        status, _, seen = request(port, api, "GET", path)
        expect(f"GET {path} on the api site", (status, seen), (404, None))
    status, _, seen = request(port, panel, "GET", "/metrics")
    expect("GET /metrics on the panel site", (status, seen), (404, None))

    status, headers, seen = request(port, api, "GET", "/api/v1/plans", headers={"X-Forwarded-For": "6.6.6.6"})
    expect("GET /api/v1/plans", (status, seen and seen["upstream"]), (200, "api"))
    if seen:
        expect("X-Forwarded-For reaching the api", seen["headers"].get("x-forwarded-for"), "127.0.0.1")
    for header, value in (("strict-transport-security", "max-age=31536000; includeSubDomains"),
                          ("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"),
                          ("referrer-policy", "no-referrer")):
        expect(f"{header} on the api site", headers.get(header), value)
    if "server" in headers:
        fail(f"the Server header is exposed: {headers['server']}")

    status, _, seen = request(port, api, "POST", "/api/v1/webhooks/stripe", body=b"{}",
                              headers={"Content-Type": "application/json"})
    expect("POST /api/v1/webhooks/stripe", (status, seen and seen["upstream"], seen and seen["path"]),
           (200, "api", "/api/v1/webhooks/stripe"))
    status, _, seen = request(port, api, "POST", "/api/v1/webhooks/stripe", body=b"x" * (1024 * 1024 + 1))
    # Caddy 2.6 (Debian) answers 502 when the proxied body exceeds the limit, later versions 413: either way the
    # body never reaches the api.
    if status not in (413, 502) or seen:
        fail(f"a webhook body over 1 MB: got {status} {seen and seen['body_length']}, expected 413 or 502")

    status, _, seen = request(port, api, "POST", "/telegram/updates", body=b"{}",
                              headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    expect("POST /telegram/updates", (status, seen and seen["upstream"], seen and seen["path"]),
           (200, "bot", "/telegram/updates"))
    status, _, seen = request(port, api, "GET", "/telegram/updates")
    expect("GET /telegram/updates (only POST reaches the bot)", (status, seen), (405, None))
    status, _, seen = request(port, api, "GET", "/health")
    expect("GET /health on the api site goes to the api, not the bot", seen and seen["upstream"], "api")

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall((f"GET /api/v1/ws/live HTTP/1.1\r\nHost: {api}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        received = b""
        deadline = time.time() + 10
        while b"upgraded:api" not in received and time.time() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
        if not received.startswith(b"HTTP/1.1 101") or b"upgraded:api" not in received:
            fail(f"WebSocket upgrade on /api/v1/ws/live: got {received[:200]!r}")

    status, _, seen = request(port, panel, "GET", "/auth/login")
    expect("GET / on the panel site", (status, seen and seen["upstream"]), (200, "panel"))
    if seen:
        expect("X-Forwarded-Proto reaching the panel", seen["headers"].get("x-forwarded-proto"), "http")
        expect("X-Forwarded-For reaching the panel", seen["headers"].get("x-forwarded-for"), "127.0.0.1")
    status, _, seen = request(port, panel, "GET", "/auth/login", source="127.0.0.2")
    expect("the panel from outside PANEL_ALLOWED_NETWORKS", (status, seen), (403, None))

    status, _, seen = request(port, sub, "GET", "/AbCdEf1234567890")
    expect("GET /<shortUuid> on the subscription site", (status, seen and seen["upstream"]), (200, "subpage"))


def main() -> int:
    caddy = sys.argv[1] if len(sys.argv) > 1 else "caddy"
    upstreams = {name: stub(name) for name in ("api", "bot", "panel", "subpage")}
    port = free_port()
    hosts = {"api": f"api.localhost:{port}", "panel": f"panel.localhost:{port}", "sub": f"sub.localhost:{port}"}
    with tempfile.TemporaryDirectory() as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
            "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home,
            "ACME_EMAIL": "ops@example.com", "CADDY_ADMIN": "off",
            "API_DOMAIN": f"http://{hosts['api']}", "PANEL_DOMAIN": f"http://{hosts['panel']}",
            "SUB_DOMAIN": f"http://{hosts['sub']}", "PANEL_ALLOWED_NETWORKS": "127.0.0.1/32 ::1/128",
            **{f"{name.upper()}_UPSTREAM": f"127.0.0.1:{server.server_address[1]}"
               for name, server in upstreams.items()},
        }
        log = Path(home) / "caddy.log"
        with log.open("w") as out:
            proc = subprocess.Popen([caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                                    env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                for _ in range(100):
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                        break
                    except OSError:
                        if proc.poll() is not None:
                            break
                        time.sleep(0.1)
                if proc.poll() is not None:
                    fail(f"caddy exited early:\n{log.read_text()[-2000:]}")
                else:
                    run_checks(port, hosts)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        text = log.read_text()
        if SECRET in text:
            fail("the Telegram webhook secret header reached Caddy's access log")
        if "/telegram/updates" not in text:
            fail("no access log line for the Telegram webhook request")
    for server in upstreams.values():
        server.shutdown()
        server.server_close()
    print("  routes, /metrics blocked, webhooks (1 MB limit), WebSocket upgrade, Telegram POST-only, forwarded "
          "headers, security headers, panel allowlist, log redaction")
    for message in errors:
        print(f"  FAIL {message}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
