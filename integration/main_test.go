//go:build integration

// Package integration runs Neocortex as real processes on loopback, with
// real peers: Prometheus as the remote-write client, etcd as the ring's KV
// store, versitygw as the S3 server of the long-term storage, memcached and
// redis as the results and index caches, and promtool to read the blocks.
// `make integration` runs it; the peers come from Debian packages
// (prometheus, which ships promtool, etcd-server, memcached, redis-server)
// and from `go install` (versitygw), which scripts/install-integration-deps.sh
// runs.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// neocortexBin is the binary under test and loadgenBin the load generator,
// both built once for the suite.
var neocortexBin, loadgenBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "neocortex-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	neocortexBin = filepath.Join(dir, "neocortex")
	loadgenBin = filepath.Join(dir, "loadgen")
	for bin, pkg := range map[string]string{neocortexBin: "../cmd/neocortex", loadgenBin: "../tools/loadgen"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", pkg+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireBinary fails the test when a peer is not installed: the suite
// must not silently pass without the real parts it is about.
func requireBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run scripts/install-integration-deps.sh (Debian packages prometheus, etcd-server, memcached, redis-server; versitygw)", name)
	}
	return p
}
