package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	gokitlog "github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "debug logfmt", cfg: Config{Level: "debug", Format: "logfmt"}},
		{name: "info json", cfg: Config{Level: "info", Format: "json"}},
		{name: "warn logfmt", cfg: Config{Level: "warn", Format: "logfmt"}},
		{name: "error json", cfg: Config{Level: "error", Format: "json"}},
		{name: "level is case-insensitive", cfg: Config{Level: "WARN", Format: "json"}},
		{name: "unknown level", cfg: Config{Level: "verbose", Format: "json"}, wantErr: `unknown log level "verbose": use debug, info, warn or error`},
		{name: "warning is not a level", cfg: Config{Level: "warning", Format: "json"}, wantErr: `unknown log level "warning": use debug, info, warn or error`},
		{name: "empty level", cfg: Config{Level: "", Format: "json"}, wantErr: `unknown log level "": use debug, info, warn or error`},
		{name: "unknown format", cfg: Config{Level: "info", Format: "text"}, wantErr: `unknown log format "text": use logfmt or json`},
		{name: "format is case-sensitive", cfg: Config{Level: "info", Format: "JSON"}, wantErr: `unknown log format "JSON": use logfmt or json`},
		{name: "empty format", cfg: Config{Level: "info", Format: ""}, wantErr: `unknown log format "": use logfmt or json`},
		{name: "level checked first", cfg: Config{Level: "x", Format: "y"}, wantErr: `unknown log level "x": use debug, info, warn or error`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var buf bytes.Buffer
			l, newErr := New(tc.cfg, &buf)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				require.EqualError(t, newErr, tc.wantErr)
				require.Nil(t, l)
				return
			}
			require.NoError(t, err)
			require.NoError(t, newErr)
			require.NotNil(t, l)
		})
	}
}

// logAll logs one record at each level with an attribute.
func logAll(l *slog.Logger) {
	l.Debug("d", "k", 1)
	l.Info("i", "k", 2)
	l.Warn("w", "k", 3)
	l.Error("e", "k", 4)
}

func TestNewJSON(t *testing.T) {
	all := []map[string]any{
		{"level": "DEBUG", "msg": "d", "k": float64(1)},
		{"level": "INFO", "msg": "i", "k": float64(2)},
		{"level": "WARN", "msg": "w", "k": float64(3)},
		{"level": "ERROR", "msg": "e", "k": float64(4)},
	}
	for _, tc := range []struct {
		level string
		want  []map[string]any
	}{
		{level: "debug", want: all},
		{level: "info", want: all[1:]},
		{level: "warn", want: all[2:]},
		{level: "error", want: all[3:]},
	} {
		t.Run(tc.level, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := New(Config{Level: tc.level, Format: "json"}, &buf)
			require.NoError(t, err)
			logAll(l)

			var got []map[string]any
			for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
				var rec map[string]any
				require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
				ts, ok := rec["time"].(string)
				require.True(t, ok, "record without time: %s", line)
				_, err := time.Parse(time.RFC3339Nano, ts)
				require.NoError(t, err)
				delete(rec, "time")
				got = append(got, rec)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestNewLogfmt(t *testing.T) {
	all := []string{
		"level=DEBUG msg=d k=1",
		"level=INFO msg=i k=2",
		"level=WARN msg=w k=3",
		"level=ERROR msg=e k=4",
	}
	for _, tc := range []struct {
		level string
		want  []string
	}{
		{level: "debug", want: all},
		{level: "info", want: all[1:]},
		{level: "warn", want: all[2:]},
		{level: "error", want: all[3:]},
	} {
		t.Run(tc.level, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := New(Config{Level: tc.level, Format: "logfmt"}, &buf)
			require.NoError(t, err)
			logAll(l)

			var got []string
			for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
				ts, rest, ok := strings.Cut(line, " ")
				require.True(t, ok, line)
				require.True(t, strings.HasPrefix(ts, "time="), line)
				_, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(ts, "time="))
				require.NoError(t, err)
				got = append(got, rest)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// jsonLogger is a slog JSON logger at lvl writing to buf without times.
func jsonLogger(buf *bytes.Buffer, lvl slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{
		Level: lvl,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

func TestGoKit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level slog.Level
		log   func(l gokitlog.Logger) error
		want  string // one JSON record, or "" for none
	}{
		{
			name:  "debug at debug",
			level: slog.LevelDebug,
			log:   func(l gokitlog.Logger) error { return level.Debug(l).Log("msg", "x", "k", "v") },
			want:  `{"level":"DEBUG","msg":"x","k":"v"}`,
		},
		{
			name:  "debug filtered at info",
			level: slog.LevelInfo,
			log:   func(l gokitlog.Logger) error { return level.Debug(l).Log("msg", "x", "k", "v") },
		},
		{
			name:  "info",
			level: slog.LevelInfo,
			log:   func(l gokitlog.Logger) error { return level.Info(l).Log("msg", "x", "k", "v") },
			want:  `{"level":"INFO","msg":"x","k":"v"}`,
		},
		{
			name:  "info filtered at warn",
			level: slog.LevelWarn,
			log:   func(l gokitlog.Logger) error { return level.Info(l).Log("msg", "x") },
		},
		{
			name:  "warn",
			level: slog.LevelInfo,
			log:   func(l gokitlog.Logger) error { return level.Warn(l).Log("msg", "x", "k", "v") },
			want:  `{"level":"WARN","msg":"x","k":"v"}`,
		},
		{
			name:  "error",
			level: slog.LevelError,
			log:   func(l gokitlog.Logger) error { return level.Error(l).Log("msg", "x", "k", "v") },
			want:  `{"level":"ERROR","msg":"x","k":"v"}`,
		},
		{
			name:  "no level is info",
			level: slog.LevelInfo,
			log:   func(l gokitlog.Logger) error { return l.Log("msg", "x") },
			want:  `{"level":"INFO","msg":"x"}`,
		},
		{
			name:  "string level warning",
			level: slog.LevelInfo,
			log:   func(l gokitlog.Logger) error { return l.Log("level", "warning", "msg", "x") },
			want:  `{"level":"WARN","msg":"x"}`,
		},
		{
			name:  "upper-case string level",
			level: slog.LevelInfo,
			log:   func(l gokitlog.Logger) error { return l.Log("level", "ERROR", "msg", "x") },
			want:  `{"level":"ERROR","msg":"x"}`,
		},
		{
			name:  "no msg",
			level: slog.LevelInfo,
			log:   func(l gokitlog.Logger) error { return level.Info(l).Log("k", "v") },
			want:  `{"level":"INFO","msg":"","k":"v"}`,
		},
		{
			name:  "msg after attributes and non-string msg",
			level: slog.LevelInfo,
			log:   func(l gokitlog.Logger) error { return level.Info(l).Log("k", "v", "msg", errors.New("boom")) },
			want:  `{"level":"INFO","msg":"boom","k":"v"}`,
		},
		{
			name:  "caller and ts dropped",
			level: slog.LevelInfo,
			log: func(l gokitlog.Logger) error {
				l = gokitlog.With(l, "ts", gokitlog.DefaultTimestampUTC, "caller", gokitlog.DefaultCaller)
				return level.Info(l).Log("msg", "x", "k", "v")
			},
			want: `{"level":"INFO","msg":"x","k":"v"}`,
		},
		{
			name:  "typed attributes",
			level: slog.LevelInfo,
			log: func(l gokitlog.Logger) error {
				return level.Warn(l).Log("msg", "x", "n", 42, "ok", true, "err", errors.New("boom"), "d", 1500*time.Millisecond)
			},
			want: `{"level":"WARN","msg":"x","n":42,"ok":true,"err":"boom","d":1500000000}`,
		},
		{
			name:  "attributes keep their order and non-string keys are printed",
			level: slog.LevelInfo,
			log:   func(l gokitlog.Logger) error { return l.Log("z", 1, "a", 2, 7, "seven") },
			want:  `{"level":"INFO","msg":"","z":1,"a":2,"7":"seven"}`,
		},
		{
			name:  "context from go-kit With",
			level: slog.LevelInfo,
			log: func(l gokitlog.Logger) error {
				return level.Info(gokitlog.With(l, "component", "ring")).Log("msg", "x")
			},
			want: `{"level":"INFO","msg":"x","component":"ring"}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, tc.log(GoKit(jsonLogger(&buf, tc.level))))
			if tc.want == "" {
				require.Empty(t, buf.String())
				return
			}
			require.Equal(t, tc.want+"\n", buf.String())
		})
	}
}

func TestGoKitKeepsSlogAttributes(t *testing.T) {
	var buf bytes.Buffer
	l := GoKit(jsonLogger(&buf, slog.LevelInfo).With("component", "memberlist"))
	require.NoError(t, level.Info(l).Log("msg", "joined", "nodes", 3))
	require.Equal(t, `{"level":"INFO","msg":"joined","component":"memberlist","nodes":3}`+"\n", buf.String())
}
