// Package querier answers PromQL and the rest of the Prometheus HTTP API over
// the tenant's series held by the ingesters, with replicas merged and
// deduplicated. The HTTP layer is Prometheus's own web/api/v1, so responses
// are byte for byte what Prometheus would send.
package querier

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/version"
)

// Config configures the PromQL engine and the remote-read endpoint.
type Config struct {
	Timeout              time.Duration `yaml:"timeout"`
	MaxSamples           int           `yaml:"max_samples"`
	LookbackDelta        time.Duration `yaml:"lookback_delta"`
	MaxConcurrentQueries int           `yaml:"max_concurrent"`

	SlowQueryThreshold time.Duration `yaml:"log_queries_longer_than"`

	RemoteReadSampleLimit      int `yaml:"remote_read_sample_limit"`
	RemoteReadConcurrencyLimit int `yaml:"remote_read_concurrency_limit"`
	RemoteReadMaxBytesInFrame  int `yaml:"remote_read_max_bytes_in_frame"`

	// QueryIngestersWithin: queries ending before now minus this do not
	// ask the ingesters (0 = always ask).
	QueryIngestersWithin time.Duration `yaml:"query_ingesters_within"`
	// QueryStoreAfter: only data older than now minus this is read from
	// the blocks in the bucket (0 = all of it).
	QueryStoreAfter time.Duration `yaml:"query_store_after"`
	// BucketIndexCacheTTL is how long a tenant's bucket index is reused.
	BucketIndexCacheTTL time.Duration `yaml:"bucket_index_cache_ttl"`
	// StoreGatewayAttempts is how many store-gateways are tried per block.
	StoreGatewayAttempts int `yaml:"store_gateway_attempts"`
}

// RegisterFlags registers the querier flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Timeout, "querier.timeout", 2*time.Minute, "Time limit of one query.")
	f.IntVar(&c.MaxSamples, "querier.max-samples", 50000000, "Most samples one query may hold in memory at once.")
	f.DurationVar(&c.LookbackDelta, "querier.lookback-delta", 5*time.Minute, "How far back an instant vector selector looks for a sample.")
	f.IntVar(&c.MaxConcurrentQueries, "querier.max-concurrent", 20, "Most queries evaluated at once; more wait.")
	f.DurationVar(&c.SlowQueryThreshold, "querier.log-queries-longer-than", 10*time.Second, "Log queries that take at least this long, with their tenant, query and what they fetched (0 = never).")
	f.IntVar(&c.RemoteReadSampleLimit, "querier.remote-read-sample-limit", 50000000, "Most samples one sampled remote-read request may return (0 = unlimited).")
	f.IntVar(&c.RemoteReadConcurrencyLimit, "querier.remote-read-concurrency-limit", 10, "Most remote-read requests served at once (0 = unlimited).")
	f.IntVar(&c.RemoteReadMaxBytesInFrame, "querier.remote-read-max-bytes-in-frame", 1<<20, "Largest frame of a streamed remote-read response, in bytes.")
	f.DurationVar(&c.QueryIngestersWithin, "querier.query-ingesters-within", 5*time.Hour, "Queries ending before now minus this do not ask the ingesters (0 = always ask); keep it below ingester.retention_period.")
	f.DurationVar(&c.QueryStoreAfter, "querier.query-store-after", 4*time.Hour, "Only data older than now minus this is read from the blocks in the bucket (0 = all of it); keep it below querier.query_ingesters_within.")
	f.DurationVar(&c.BucketIndexCacheTTL, "querier.bucket-index-cache-ttl", time.Minute, "How long a tenant's bucket index is reused before it is read again (0 = read on every query).")
	f.IntVar(&c.StoreGatewayAttempts, "querier.store-gateway-attempts", 3, "How many store-gateways are tried for each block before the query fails.")
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Timeout <= 0 || c.LookbackDelta <= 0 || c.MaxSamples <= 0 || c.MaxConcurrentQueries <= 0 {
		return errors.New("querier timeout, lookback_delta, max_samples and max_concurrent must be positive")
	}
	if c.RemoteReadMaxBytesInFrame <= 0 {
		return errors.New("querier.remote_read_max_bytes_in_frame must be positive")
	}
	if c.QueryIngestersWithin < 0 || c.QueryStoreAfter < 0 || c.BucketIndexCacheTTL < 0 {
		return errors.New("querier.query_ingesters_within, query_store_after and bucket_index_cache_ttl must not be negative")
	}
	if c.QueryIngestersWithin > 0 && c.QueryStoreAfter >= c.QueryIngestersWithin {
		return fmt.Errorf("querier.query_store_after (%s) must be less than querier.query_ingesters_within (%s), or data between them is read from nowhere", c.QueryStoreAfter, c.QueryIngestersWithin)
	}
	if c.StoreGatewayAttempts < 1 {
		return errors.New("querier.store_gateway_attempts must be at least 1")
	}
	return nil
}

// API serves the Prometheus query endpoints over a queryable.
type API struct {
	router   *route.Router
	handler  http.Handler
	metadata http.Handler
}

// routes are the Prometheus API endpoints Neocortex serves, under
// <prefix>/api/v1. The others (targets, rules, admin, TSDB status…) belong
// to a single Prometheus server, or to other components.
var routes = []struct{ method, path string }{
	{http.MethodGet, "/query"}, {http.MethodPost, "/query"},
	{http.MethodGet, "/query_range"}, {http.MethodPost, "/query_range"},
	{http.MethodGet, "/query_exemplars"}, {http.MethodPost, "/query_exemplars"},
	{http.MethodGet, "/format_query"}, {http.MethodPost, "/format_query"},
	{http.MethodGet, "/parse_query"}, {http.MethodPost, "/parse_query"},
	{http.MethodGet, "/labels"}, {http.MethodPost, "/labels"},
	{http.MethodGet, "/label/{name}/values"},
	{http.MethodGet, "/series"}, {http.MethodPost, "/series"}, {http.MethodDelete, "/series"},
	{http.MethodGet, "/status/buildinfo"},
	{http.MethodPost, "/read"},
}

// noCORS matches no origin: browsers get no CORS headers, as the API is
// authenticated by a header a page from elsewhere must not send.
var noCORS = regexp.MustCompile("^$")

// Queryable is what the API reads: samples, chunks (remote read) and
// exemplars.
type Queryable interface {
	storage.SampleAndChunkQueryable
	storage.ExemplarQueryable
}

// NewAPI returns the query API over q. Metadata is served from md when it
// is not nil.
//
// lim, when not nil, supplies each tenant's max_samples_per_query.
func NewAPI(cfg Config, q Queryable, md *IngesterQueryable, lim *limits.Overrides, logger *slog.Logger, reg prometheus.Registerer) *API {
	engine := newTenantEngines(promql.EngineOpts{
		Logger:               logger,
		Reg:                  prometheus.WrapRegistererWithPrefix("neocortex_querier_", reg),
		MaxSamples:           cfg.MaxSamples,
		Timeout:              cfg.Timeout,
		LookbackDelta:        cfg.LookbackDelta,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		ActiveQueryTracker:   newQueryGate(cfg.MaxConcurrentQueries),
		// A subquery without a step ([20m:]) steps by the evaluation
		// interval, which for Prometheus defaults to 1m.
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
	}, lim)
	v := version.Get()
	api := v1.NewAPI(
		engine, q, nil, q,
		nil, nil, nil, // scrape pools, targets, alertmanagers: not ours
		func() config.Config { return config.DefaultConfig },
		nil, v1.GlobalURLOptions{},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		nil, "", false, false, 0, logger,
		nil, // rules: the ruler's
		cfg.RemoteReadSampleLimit, cfg.RemoteReadConcurrencyLimit, cfg.RemoteReadMaxBytesInFrame,
		false, noCORS,
		func() (v1.RuntimeInfo, error) { return v1.RuntimeInfo{}, errors.New("not available") },
		&v1.PrometheusVersion{Version: v.Version, Revision: v.Revision, Branch: v.Branch, BuildDate: v.BuildDate, GoVersion: v.GoVersion},
		nil, nil, nil, prometheus.WrapRegistererWithPrefix("neocortex_querier_", reg), nil,
		false, nil, false, false, false,
		cfg.LookbackDelta, false, false, nil, nil, v1.OpenAPIOptions{}, nil, false, cfg.Timeout,
	)
	// matrixCodec first: it is the default, and it hands what it does not
	// write itself to v1.JSONCodec.
	api.ClearCodecs()
	api.InstallCodec(matrixCodec{})
	router := route.New().WithPrefix("/api/v1")
	api.Register(router)
	metrics := newRequestMetrics(reg)
	a := &API{router: router, handler: instrument(router, metrics, logger, cfg.SlowQueryThreshold)}
	if md != nil {
		a.metadata = instrument(MetadataHandler(md), metrics, logger, cfg.SlowQueryThreshold)
	}
	return a
}

// Register adds the endpoints under prefix (e.g. "/prometheus") to mux;
// wrap wraps each handler (tenant resolution).
func (a *API) Register(mux *http.ServeMux, prefix string, wrap func(http.Handler) http.Handler) {
	h := wrap(http.StripPrefix(prefix, a.handler))
	for _, r := range routes {
		mux.Handle(r.method+" "+prefix+"/api/v1"+r.path, h)
	}
	if a.metadata != nil {
		mux.Handle(http.MethodGet+" "+prefix+"/api/v1/metadata", wrap(a.metadata))
	}
}

// queryGate bounds the queries evaluated at once; the engine waits for a
// slot before it evaluates.
type queryGate chan struct{}

func newQueryGate(n int) queryGate { return make(queryGate, n) }

func (g queryGate) GetMaxConcurrent() int { return cap(g) }

func (g queryGate) Insert(ctx context.Context, _ string) (int, error) {
	select {
	case g <- struct{}{}:
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (g queryGate) Delete(int) { <-g }

func (g queryGate) Close() error { return nil }
