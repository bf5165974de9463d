// Package querier answers PromQL over the tenant's series held by the
// ingesters, with replicas merged and deduplicated, through Prometheus's
// engine and HTTP API shapes.
package querier

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// Config configures the PromQL engine.
type Config struct {
	Timeout              time.Duration `yaml:"timeout"`
	MaxSamples           int           `yaml:"max_samples"`
	LookbackDelta        time.Duration `yaml:"lookback_delta"`
	MaxConcurrentQueries int           `yaml:"max_concurrent"`
}

// RegisterFlags registers the querier flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Timeout, "querier.timeout", 2*time.Minute, "Time limit of one query.")
	f.IntVar(&c.MaxSamples, "querier.max-samples", 50000000, "Most samples one query may hold in memory at once.")
	f.DurationVar(&c.LookbackDelta, "querier.lookback-delta", 5*time.Minute, "How far back an instant vector selector looks for a sample.")
	f.IntVar(&c.MaxConcurrentQueries, "querier.max-concurrent", 20, "Most queries evaluated at once; more wait.")
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Timeout <= 0 || c.LookbackDelta <= 0 || c.MaxSamples <= 0 || c.MaxConcurrentQueries <= 0 {
		return errors.New("querier timeout, lookback_delta, max_samples and max_concurrent must be positive")
	}
	return nil
}

// API serves the Prometheus query endpoints over a queryable.
type API struct {
	cfg       Config
	engine    *promql.Engine
	queryable storage.Queryable
	logger    *slog.Logger
	gate      chan struct{}
}

// NewAPI returns the query API over q.
func NewAPI(cfg Config, q storage.Queryable, logger *slog.Logger, reg prometheus.Registerer) *API {
	engine := promql.NewEngine(promql.EngineOpts{
		Logger:               logger,
		Reg:                  prometheus.WrapRegistererWithPrefix("neocortex_querier_", reg),
		MaxSamples:           cfg.MaxSamples,
		Timeout:              cfg.Timeout,
		LookbackDelta:        cfg.LookbackDelta,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})
	return &API{cfg: cfg, engine: engine, queryable: q, logger: logger, gate: make(chan struct{}, cfg.MaxConcurrentQueries)}
}

// Register adds the endpoints under prefix (e.g. "/prometheus") to mux;
// wrap wraps each handler (tenant resolution).
func (a *API) Register(mux *http.ServeMux, prefix string, wrap func(http.Handler) http.Handler) {
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		mux.Handle(m+" "+prefix+"/api/v1/query", wrap(http.HandlerFunc(a.query)))
		mux.Handle(m+" "+prefix+"/api/v1/query_range", wrap(http.HandlerFunc(a.queryRange)))
	}
}

type apiError struct {
	typ    string
	status int
	err    error
}

func badData(format string, args ...any) *apiError {
	return &apiError{typ: "bad_data", status: http.StatusBadRequest, err: fmt.Errorf(format, args...)}
}

func (a *API) query(w http.ResponseWriter, r *http.Request) {
	ts := time.Now()
	if v := r.FormValue("time"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			writeError(w, badData("invalid parameter \"time\": %s", err))
			return
		}
		ts = t
	}
	ctx, cancel, aerr := a.queryContext(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	defer cancel()
	q, err := a.engine.NewInstantQuery(ctx, a.queryable, nil, r.FormValue("query"), ts)
	if err != nil {
		writeError(w, badData("invalid parameter \"query\": %s", err))
		return
	}
	a.exec(ctx, w, q)
}

func (a *API) queryRange(w http.ResponseWriter, r *http.Request) {
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		writeError(w, badData("invalid parameter \"start\": %s", err))
		return
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		writeError(w, badData("invalid parameter \"end\": %s", err))
		return
	}
	if end.Before(start) {
		writeError(w, badData("invalid parameter \"end\": end timestamp must not be before start time"))
		return
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		writeError(w, badData("invalid parameter \"step\": %s", err))
		return
	}
	if step <= 0 {
		writeError(w, badData("invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"))
		return
	}
	if end.Sub(start)/step > 11000 {
		writeError(w, badData("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"))
		return
	}
	ctx, cancel, aerr := a.queryContext(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	defer cancel()
	q, err := a.engine.NewRangeQuery(ctx, a.queryable, nil, r.FormValue("query"), start, end, step)
	if err != nil {
		writeError(w, badData("invalid parameter \"query\": %s", err))
		return
	}
	a.exec(ctx, w, q)
}

func (a *API) queryContext(r *http.Request) (context.Context, context.CancelFunc, *apiError) {
	timeout := a.cfg.Timeout
	if v := r.FormValue("timeout"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return nil, nil, badData("invalid parameter \"timeout\": %s", err)
		}
		timeout = min(timeout, d)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	return ctx, cancel, nil
}

func (a *API) exec(ctx context.Context, w http.ResponseWriter, q promql.Query) {
	defer q.Close()
	select {
	case a.gate <- struct{}{}:
		defer func() { <-a.gate }()
	case <-ctx.Done():
		writeError(w, &apiError{typ: "timeout", status: http.StatusServiceUnavailable, err: errors.New("query timed out waiting for a free query slot")})
		return
	}
	res := q.Exec(ctx)
	if res.Err != nil {
		writeError(w, engineError(res.Err))
		return
	}
	resp := map[string]any{
		"status": "success",
		"data": map[string]any{
			"resultType": res.Value.Type(),
			"result":     res.Value,
		},
	}
	if warnings, _ := res.Warnings.AsStrings("", 0, 0); len(warnings) > 0 {
		resp["warnings"] = warnings
	}
	writeJSON(w, http.StatusOK, resp)
}

// engineError maps PromQL errors to Prometheus's error types and statuses.
func engineError(err error) *apiError {
	var (
		eqc promql.ErrQueryCanceled
		eqt promql.ErrQueryTimeout
		es  promql.ErrStorage
	)
	switch {
	case errors.As(err, &eqc):
		return &apiError{typ: "canceled", status: 499, err: err}
	case errors.As(err, &eqt), errors.Is(err, context.DeadlineExceeded):
		return &apiError{typ: "timeout", status: http.StatusServiceUnavailable, err: err}
	case errors.As(err, &es):
		return &apiError{typ: "internal", status: http.StatusInternalServerError, err: err}
	}
	return &apiError{typ: "execution", status: http.StatusUnprocessableEntity, err: err}
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, map[string]any{"status": "error", "errorType": e.typ, "error": e.err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, fmt.Sprintf("encode response: %s", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// parseTime accepts Unix seconds (with fraction) or RFC 3339, as Prometheus does.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("missing")
	}
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		// Round to the millisecond as Prometheus does: 1.123 is not
		// 1.12299999 seconds, which would miss a sample at 1123 ms.
		sec, frac := math.Modf(t)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseDuration accepts seconds (with fraction) or a Prometheus duration.
func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if ts > float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}
