// Command loadgen is a Prometheus remote-write (1.0 or 2.0) load generator
// and correctness checker. It writes -active-series series, one sample each
// per -interval like a Prometheus server scraping them, reports throughput,
// latency, failures and (with -server-pid) the server's CPU and memory, and
// with -verify reads every acknowledged sample back through the query API.
// See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `Usage: loadgen [flags]

Sends remote-write load (1.0, or 2.0 with -remote-write-version 2.0) to
-url and prints reports on stdout, one "key: value" per line, every
-report-interval and at the end. With -backfill, first writes that much
history as fast as the server takes it. With -verify, reads back every
acknowledged sample through -query-url. Exits 0 on success,
1 if nothing was acknowledged or verification failed, 2 on bad flags.

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	cfg.RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadgen: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	r, err := newRunner(cfg, logger, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 2
	}

	// The first interrupt stops sending; verification, if asked for, then
	// checks what was acknowledged, and a second interrupt stops it.
	sendCtx, stopSend := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	_, err = r.send(sendCtx)
	stopSend()
	if err != nil {
		logger.Error("run failed", "err", err)
		return 1
	}
	if !cfg.Verify {
		return 0
	}
	verifyCtx, stopVerify := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopVerify()
	res, err := r.verify(verifyCtx)
	if err != nil {
		logger.Error("verification could not be done", "err", err)
		return 1
	}
	if res.Missing > 0 || res.Wrong > 0 {
		logger.Error("verification failed", "missing_samples", res.Missing, "wrong_samples", res.Wrong)
		return 1
	}
	logger.Info("verification passed", "samples", res.Found)
	return 0
}
