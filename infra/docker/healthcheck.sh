#!/bin/bash
# HEALTHCHECK of the CyberVPN images: `GET <path>` on the service's own port, healthy on a 200 answer.
#
#   healthcheck LISTEN PATH
#
# LISTEN is a port number or the name of the environment variable that holds the service's listen address
# (`CYBERVPN_API_LISTEN=0.0.0.0:8080`), so the probe follows the port the service was told to bind. A wildcard
# address is probed on 127.0.0.1. The runtime image carries no curl or wget: bash's /dev/tcp is enough for one
# HTTP/1.1 request and needs nothing installed. Docker enforces the HEALTHCHECK timeout; `read -t` bounds the wait
# for the status line as well.
set -euo pipefail

listen="${1:?usage: healthcheck PORT|LISTEN_VARIABLE PATH}"
path="${2:-/health}"
if [[ ! "$listen" =~ ^[0-9]+$ ]]; then
  listen="${!listen:?the variable $1 holding the listen address is not set}"
fi
host=127.0.0.1
port="${listen##*:}"
if [[ "$listen" == *:* ]]; then
  host="${listen%:*}"
  host="${host#[}"
  host="${host%]}"
  case "$host" in "" | 0.0.0.0 | :: | "*") host=127.0.0.1 ;; esac
fi

exec 3<>"/dev/tcp/${host}/${port}"
printf 'GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: docker-healthcheck\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
status=""
IFS= read -r -t 5 status <&3 || true
exec 3<&-
if [[ "$status" =~ ^HTTP/1\.[01]\ 200 ]]; then
  exit 0
fi
echo "unhealthy: GET ${path} on ${host}:${port} answered '${status%$'\r'}'" >&2
exit 1
