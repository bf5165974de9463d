#!/usr/bin/env bash
# Installs the real peers the integration suite runs against when they are
# missing: from Debian packages, Prometheus (remote-write client; the package
# also ships promtool, which checks the blocks), etcd (ring KV store),
# memcached and redis-server (results and index caches); and versitygw, an
# S3 server on a local directory (long-term storage on S3), built with
# `go install` into VERSITYGW_BIN (default /usr/local/bin).
set -euo pipefail

VERSITYGW_VERSION=v1.8.0
VERSITYGW_BIN=${VERSITYGW_BIN:-/usr/local/bin}

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

missing=()
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v memcached >/dev/null 2>&1 || missing+=(memcached)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
	# The packages may start their own daemons; the suite runs its own instances.
	$SUDO pkill -x prometheus 2>/dev/null || true
	$SUDO pkill -x etcd 2>/dev/null || true
	$SUDO pkill -x memcached 2>/dev/null || true
	$SUDO pkill -x redis-server 2>/dev/null || true
fi

if ! command -v versitygw >/dev/null 2>&1; then
	# Built outside this module (pkg@version ignores go.mod), as the user,
	# then installed; -mod=mod overrides a GOFLAGS=-mod=vendor/readonly.
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && GOFLAGS=-mod=mod GOBIN="$tmp" go install "github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}")
	if [ -w "$VERSITYGW_BIN" ]; then
		install -m 0755 "$tmp/versitygw" "$VERSITYGW_BIN/versitygw"
	else
		$SUDO install -m 0755 "$tmp/versitygw" "$VERSITYGW_BIN/versitygw"
	fi
	command -v versitygw >/dev/null 2>&1 || {
		echo "versitygw installed in $VERSITYGW_BIN, which is not on PATH" >&2
		exit 1
	}
fi
