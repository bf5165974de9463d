// Package logging builds the process's structured logger (log/slog) and the
// adapter that lets dskit's go-kit based code log through it.
package logging

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	gokitlog "github.com/go-kit/log"
)

// Config selects the log level and format.
type Config struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// RegisterFlags registers the logging flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Level, "log.level", "info", "Log level: debug, info, warn or error.")
	f.StringVar(&c.Format, "log.format", "logfmt", "Log format: logfmt or json.")
}

// Validate checks the level and the format.
func (c *Config) Validate() error {
	if _, err := parseLevel(c.Level); err != nil {
		return err
	}
	if c.Format != "logfmt" && c.Format != "json" {
		return fmt.Errorf("unknown log format %q: use logfmt or json", c.Format)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("unknown log level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

// New returns a logger writing to w.
func New(c Config, w io.Writer) (*slog.Logger, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	level, _ := parseLevel(c.Level)
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// GoKit adapts l to the go-kit logger interface that dskit expects. The
// "level" and "msg" keys of go-kit records become the slog level and message.
func GoKit(l *slog.Logger) gokitlog.Logger {
	return goKitAdapter{l: l}
}

type goKitAdapter struct{ l *slog.Logger }

func (a goKitAdapter) Log(keyvals ...any) error {
	level := slog.LevelInfo
	msg := ""
	attrs := make([]slog.Attr, 0, len(keyvals)/2)
	for i := 0; i+1 < len(keyvals); i += 2 {
		key := fmt.Sprint(keyvals[i])
		switch key {
		case "level":
			switch strings.ToLower(fmt.Sprint(keyvals[i+1])) {
			case "debug":
				level = slog.LevelDebug
			case "warn", "warning":
				level = slog.LevelWarn
			case "error":
				level = slog.LevelError
			}
		case "msg":
			msg = fmt.Sprint(keyvals[i+1])
		case "caller", "ts":
			// slog adds its own time; go-kit callers point into dskit.
		default:
			attrs = append(attrs, slog.Any(key, keyvals[i+1]))
		}
	}
	if !a.l.Enabled(context.Background(), level) {
		return nil
	}
	a.l.LogAttrs(context.Background(), level, msg, attrs...)
	return nil
}
