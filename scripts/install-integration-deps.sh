#!/usr/bin/env bash
# Installs the real peers the integration suite runs against, from Debian
# packages, when they are missing: Prometheus (remote-write client) and etcd
# (ring KV store).
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The packages may start their own daemons; the suite runs its own instances.
$SUDO pkill -x prometheus 2>/dev/null || true
$SUDO pkill -x etcd 2>/dev/null || true
