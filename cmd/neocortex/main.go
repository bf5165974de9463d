// Command neocortex runs the components of Neocortex named by -target
// (default: all of them in one process, on embedded defaults).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/neocortex-metrics/neocortex/pkg/app"
	"github.com/neocortex-metrics/neocortex/pkg/logging"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "neocortex:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := app.Load(args)
	if err != nil {
		return err
	}
	logger, err := logging.New(cfg.Log, os.Stderr)
	if err != nil {
		return err
	}
	a, err := app.New(*cfg, logger)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = a.Run(ctx)
	if err == nil {
		logger.Info("neocortex stopped")
	}
	return err
}
