package worker

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/frontendpb"
	"github.com/neocortex-metrics/neocortex/pkg/querier"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

func defaults() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	return c
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{name: "defaults: idle", change: func(*Config) {}},
		{name: "frontends", change: func(c *Config) { c.FrontendAddress = []string{"a:1", "b:1"} }},
		{name: "schedulers", change: func(c *Config) { c.SchedulerAddress = []string{"a:1"} }},
		{name: "both", change: func(c *Config) { c.FrontendAddress, c.SchedulerAddress = []string{"a:1"}, []string{"b:1"} }, wantErr: "querier frontend_address and scheduler_address are exclusive"},
		{name: "empty address", change: func(c *Config) { c.FrontendAddress = []string{""} }, wantErr: "querier frontend_address or scheduler_address has an empty entry"},
		{name: "no parallelism", change: func(c *Config) { c.Parallelism = 0 }, wantErr: "querier worker parallelism must be at least 1"},
		{name: "no id", change: func(c *Config) { c.QuerierID = "" }, wantErr: "querier_id must be set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults()
			tc.change(&c)
			err := c.Validate()
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
		})
	}
	require.Equal(t, 10, defaults().Parallelism)
	require.NotEmpty(t, defaults().QuerierID)
}

func TestExecute(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := tenant.FromContext(r.Context())
		require.NoError(t, err)
		require.Equal(t, id, r.Header.Get(tenant.Header))
		if st := querier.StatsFromContext(r.Context()); st != nil {
			st.Series.Add(2)
			st.Chunks.Add(4)
			st.Bytes.Add(8)
		}
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat("x", 4096)))
			return
		case "/created":
			w.Header().Set("Location", "/x")
			w.WriteHeader(http.StatusCreated)
		}
		_, _ = w.Write([]byte(id + " " + r.Method + " " + r.URL.RequestURI()))
	})
	cfg := defaults()
	cfg.GRPCMaxSendMsgSize = 2048
	w := New(cfg, handler, slog.New(slog.DiscardHandler), prometheus.NewRegistry())

	for _, tc := range []struct {
		name       string
		work       *work
		wantCode   int32
		wantBody   string
		wantHeader string
		wantStats  *frontendpb.QueryStats
	}{
		{name: "ok", work: &work{tenant: "team-a", req: &frontendpb.HTTPRequest{Method: "GET", Url: "/api/v1/query?query=up"}},
			wantCode: 200, wantBody: "team-a GET /api/v1/query?query=up"},
		{name: "status and headers", work: &work{tenant: "team-a", req: &frontendpb.HTTPRequest{Method: "POST", Url: "/created"}},
			wantCode: 201, wantBody: "team-a POST /created", wantHeader: "/x"},
		{name: "stats", work: &work{tenant: "team-b", stats: true, req: &frontendpb.HTTPRequest{Method: "GET", Url: "/s"}},
			wantCode: 200, wantBody: "team-b GET /s", wantStats: &frontendpb.QueryStats{FetchedSeries: 2, FetchedChunks: 4, FetchedBytes: 8}},
		{name: "panic", work: &work{tenant: "team-a", req: &frontendpb.HTTPRequest{Method: "GET", Url: "/panic"}},
			wantCode: 500, wantBody: "internal error: boom"},
		{name: "too big to send", work: &work{tenant: "team-a", req: &frontendpb.HTTPRequest{Method: "GET", Url: "/big"}},
			wantCode: 413, wantBody: "response larger than the max message size"},
		{name: "no tenant", work: &work{req: &frontendpb.HTTPRequest{Method: "GET", Url: "/"}},
			wantCode: 400, wantBody: "a query needs a tenant and a request"},
		{name: "bad method", work: &work{tenant: "team-a", req: &frontendpb.HTTPRequest{Method: "GE T", Url: "/"}},
			wantCode: 400, wantBody: "decode request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, stats := w.execute(context.Background(), tc.work)
			require.Equal(t, tc.wantCode, resp.GetCode())
			require.Contains(t, string(resp.GetBody()), tc.wantBody)
			require.Equal(t, tc.wantHeader, frontendpb.ToHTTPHeader(resp.GetHeaders()).Get("Location"))
			if tc.wantStats == nil {
				require.Nil(t, stats)
				return
			}
			require.Positive(t, stats.GetWallTimeNanoseconds())
			stats.WallTimeNanoseconds = 0
			require.True(t, proto.Equal(tc.wantStats, stats), "%v", stats)
		})
	}
}
