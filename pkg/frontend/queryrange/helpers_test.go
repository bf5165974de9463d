package queryrange

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"
)

const (
	day    = int64(24 * time.Hour / time.Millisecond)
	hour   = int64(time.Hour / time.Millisecond)
	minute = int64(time.Minute / time.Millisecond)
)

// testEngine is configured as the querier's.
func testEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		Logger:                   slog.New(slog.DiscardHandler),
		Timeout:                  time.Minute,
		MaxSamples:               50e6,
		LookbackDelta:            5 * time.Minute,
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
	})
}

// tenDays loads ten days of data at a 5m interval from the Unix epoch:
// 100 counters (one with a reset), 100 gauges, 80 classic histogram
// buckets, 2 native histograms and a sparse gauge.
func tenDays(t testing.TB) storage.Storage {
	const points = 2880 // 10 days of 5m
	var b strings.Builder
	b.WriteString("load 5m\n")
	for i := range 50 {
		for _, code := range []string{"200", "500"} {
			if i == 7 && code == "200" {
				fmt.Fprintf(&b, "  http_requests_total{job=\"api\",instance=\"i%d\",code=\"%s\"} 0+%dx1000 0+%dx%d\n", i, code, i+1, i+2, points-1001)
				continue
			}
			fmt.Fprintf(&b, "  http_requests_total{job=\"api\",instance=\"i%d\",code=\"%s\"} 0+%dx%d\n", i, code, i%13+1, points)
		}
	}
	for i := range 100 {
		fmt.Fprintf(&b, "  memory_bytes{instance=\"i%d\",zone=\"z%d\"} %d+%dx1440 %d-%dx%d\n", i, i%3, i*1000, i%7+1, i*1000+1440*(i%7+1), i%5+1, points-1441)
	}
	for i := range 20 {
		for j, le := range []string{"0.1", "0.5", "1", "+Inf"} {
			fmt.Fprintf(&b, "  request_duration_seconds_bucket{instance=\"i%d\",le=\"%s\"} 0+%dx%d\n", i, le, (j+1)*(i%4+1), points)
		}
	}
	for i := range 2 {
		fmt.Fprintf(&b, "  rpc_latency_seconds{job=\"rpc\",instance=\"i%d\"} {{schema:0 sum:1 count:2 buckets:[1 1]}}+{{schema:0 sum:%d count:4 buckets:[1 2 1]}}x%d\n", i, i+3, points)
	}
	b.WriteString("  sparse_gauge{instance=\"s\"} 1 _x100 5 6 _x500 7 _x1000 -3 2\n")
	return promqltest.LoadedStorage(t, b.String())
}

// promBody is what Prometheus's API writes for a range query's result.
func promBody(t testing.TB, res *promql.Result, query string) []byte {
	t.Helper()
	warnings, infos := res.Warnings.AsStrings(query, 10, 10)
	body, err := v1.JSONCodec{}.Encode(&v1.Response{
		Status:   "success",
		Data:     &v1.QueryData{ResultType: res.Value.Type(), Result: res.Value},
		Warnings: warnings,
		Infos:    infos,
	})
	require.NoError(t, err)
	return body
}

// evalBody evaluates r on the engine and returns Prometheus's answer.
func evalBody(t testing.TB, eng *promql.Engine, q storage.Queryable, r *Request) ([]byte, error) {
	qry, err := eng.NewRangeQuery(context.Background(), q, nil, r.Query, time.UnixMilli(r.Start), time.UnixMilli(r.End), time.Duration(r.Step)*time.Millisecond)
	if err != nil {
		return nil, &HTTPError{Code: http.StatusBadRequest, Body: []byte(err.Error())}
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		return nil, &HTTPError{Code: http.StatusUnprocessableEntity, Body: []byte(res.Err.Error())}
	}
	return promBody(t, res, r.Query), nil
}

// engineHandler is a querier: it evaluates requests on the engine and
// answers as Prometheus's API, decoded as the frontend decodes its
// queriers' answers (so that an answer passed on unchanged is written as
// it came).
func engineHandler(t testing.TB, eng *promql.Engine, q storage.Queryable) Handler {
	return HandlerFunc(func(_ context.Context, r *Request) (*Response, error) {
		body, err := evalBody(t, eng, q, r)
		if err != nil {
			return nil, err
		}
		return DecodeResponse(&http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))})
	})
}

// recorder records the requests that pass through it.
type recorder struct {
	next Handler
	mu   sync.Mutex
	reqs []*Request
}

func (r *recorder) Do(ctx context.Context, req *Request) (*Response, error) {
	r.mu.Lock()
	c := *req
	r.reqs = append(r.reqs, &c)
	r.mu.Unlock()
	return r.next.Do(ctx, req)
}

// take returns the requests recorded since the last call, by start.
func (r *recorder) take() []*Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs := r.reqs
	r.reqs = nil
	slices.SortFunc(reqs, func(a, b *Request) int { return cmp.Compare(a.Start, b.Start) })
	return reqs
}

func ranges(reqs []*Request) [][2]int64 {
	out := make([][2]int64, len(reqs))
	for i, r := range reqs {
		out[i] = [2]int64{r.Start, r.End}
	}
	return out
}

func defaultParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// testConfig is the default configuration, with an in-memory cache.
func testConfig() Config {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	return cfg
}

// alignedConfig is the default config with step alignment on, which the
// equivalence test's reference answers assume.
func alignedConfig() Config {
	cfg := testConfig()
	cfg.AlignQueriesWithStep = true
	return cfg
}

// must returns v, requiring err to be nil.
func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}

// encode returns r as EncodeResponse writes it.
func encode(t testing.TB, r *Response) string {
	t.Helper()
	b, err := EncodeResponse(r)
	require.NoError(t, err)
	return string(b)
}

// decodeResponseBody decodes a whole successful matrix answer into a
// model.Matrix.
func decodeResponseBody(body []byte) (*Response, error) {
	resp, ss, err := decodeJSONResponse(body)
	if err == nil {
		err = checkResponse(resp)
	}
	if err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	resp.Data.Result = seriesMatrix(ss)
	return resp, nil
}
