package querier

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

func TestEndpoint(t *testing.T) {
	for path, want := range map[string]string{
		"/prometheus/api/v1/query":              "query",
		"/api/prom/api/v1/query_range":          "query_range",
		"/prometheus/api/v1/label/job/values":   "label_values",
		"/prometheus/api/v1/series":             "series",
		"/somewhere/else":                       "other",
		"/prometheus/api/v1/status/buildinfo":   "status/buildinfo",
		"/prometheus/api/v1/label/a/b/c/values": "label_values",
	} {
		require.Equal(t, want, endpoint(path), path)
	}
}

func TestInstrumentLogsSlowQueries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		slow    time.Duration
		wantLog bool
	}{
		{"slow", time.Nanosecond, true},
		{"fast", time.Hour, false},
		{"off", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&buf, nil))
			m := newRequestMetrics(prometheus.NewRegistry())
			h := instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				st := StatsFromContext(r.Context())
				st.Series.Add(7)
				st.Bytes.Add(1234)
				w.WriteHeader(http.StatusUnprocessableEntity)
			}), m, logger, tc.slow)
			h = tenant.Middleware(true, h)
			req := httptest.NewRequest(http.MethodPost, "/prometheus/api/v1/query", strings.NewReader(url.Values{"query": {"sum(up)"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Scope-OrgID", "team")
			h.ServeHTTP(httptest.NewRecorder(), req)

			require.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues("team", "query", "422")))
			if !tc.wantLog {
				require.Empty(t, buf.String())
				return
			}
			line := buf.String()
			for _, want := range []string{`msg="slow query"`, "tenant=team", "endpoint=query", "query=sum(up)", "status=422", "series_fetched=7", "chunk_bytes_fetched=1234"} {
				require.Contains(t, line, want)
			}
		})
	}
}
