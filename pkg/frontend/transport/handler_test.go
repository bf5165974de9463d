package transport

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/frontendpb"
	"github.com/neocortex-metrics/neocortex/pkg/frontend/queue"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStatusCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{err: ErrTooManyRequests, want: http.StatusTooManyRequests},
		{err: queue.ErrTooManyRequests, want: http.StatusTooManyRequests},
		{err: fmt.Errorf("%w: stream broke", ErrQuerierFailed), want: http.StatusBadGateway},
		{err: ErrSchedulerFailed, want: http.StatusBadGateway},
		{err: ErrStopped, want: http.StatusServiceUnavailable},
		{err: ErrNoScheduler, want: http.StatusServiceUnavailable},
		{err: context.DeadlineExceeded, want: http.StatusGatewayTimeout},
		{err: context.Canceled, want: StatusClientClosedRequest},
		{err: tenant.ErrMissing, want: http.StatusUnauthorized},
		{err: &http.MaxBytesError{Limit: 1}, want: http.StatusRequestEntityTooLarge},
		{err: errors.New("other"), want: http.StatusInternalServerError},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			require.Equal(t, tc.want, StatusCode(tc.err))
		})
	}
}

// roundTripFunc is a RoundTripper.
type roundTripFunc func(ctx context.Context, req *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error)

func (f roundTripFunc) RoundTrip(ctx context.Context, req *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error) {
	return f(ctx, req)
}

func TestHandler(t *testing.T) {
	echo := roundTripFunc(func(ctx context.Context, req *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error) {
		id, err := tenant.FromContext(ctx)
		if err != nil {
			return nil, err
		}
		if s := StatsFromContext(ctx); s != nil {
			s.add(&frontendpb.QueryStats{FetchedSeries: 7})
		}
		h := frontendpb.ToHTTPHeader(req.GetHeaders())
		return &frontendpb.HTTPResponse{
			Code:    http.StatusAccepted,
			Headers: []*frontendpb.Header{{Name: "X-Echo", Values: []string{"a", "b"}}},
			Body:    fmt.Appendf(nil, "%s %s %s %s %s", id, req.GetMethod(), req.GetUrl(), h.Get("X-Test"), req.GetBody()),
		}, nil
	})
	fail := roundTripFunc(func(context.Context, *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error) {
		return nil, ErrTooManyRequests
	})
	for _, tc := range []struct {
		name       string
		rt         RoundTripper
		tenant     string
		body       string
		wantCode   int
		wantBody   string
		wantHeader []string
		wantLog    string
	}{
		{name: "answer passes through", rt: echo, tenant: "team-a", body: "q=up", wantCode: http.StatusAccepted,
			wantBody: "team-a POST /api/v1/query?x=1 yes q=up", wantHeader: []string{"a", "b"}, wantLog: "fetched_series=7"},
		{name: "error status", rt: fail, tenant: "team-a", wantCode: http.StatusTooManyRequests, wantBody: "too many outstanding requests\n"},
		{name: "no tenant", rt: echo, wantCode: http.StatusUnauthorized, wantBody: tenant.ErrMissing.Error() + "\n"},
		{name: "body too large", rt: echo, tenant: "team-a", body: strings.Repeat("x", 11), wantCode: http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := NewHandler(tc.rt, 10, true, slog.New(slog.NewTextHandler(&logs, nil)))
			r := httptest.NewRequest(http.MethodPost, "/api/v1/query?x=1", strings.NewReader(tc.body))
			r.Header.Set("X-Test", "yes")
			if tc.tenant != "" {
				r = r.WithContext(tenant.WithTenant(r.Context(), tc.tenant))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			require.Equal(t, tc.wantCode, w.Code)
			if tc.wantBody != "" {
				body, _ := io.ReadAll(w.Body)
				require.Equal(t, tc.wantBody, string(body))
			}
			require.Equal(t, tc.wantHeader, w.Header().Values("X-Echo"))
			require.Contains(t, logs.String(), tc.wantLog)
		})
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{name: "defaults", change: func(*Config) {}},
		{name: "schedulers", change: func(c *Config) { c.SchedulerAddress = []string{"a:1", "b:2"} }},
		{name: "empty scheduler", change: func(c *Config) { c.SchedulerAddress = []string{"a:1", ""} }, wantErr: "frontend scheduler_address has an empty entry"},
		{name: "no body", change: func(c *Config) { c.MaxBodySize = 0 }, wantErr: "frontend max_body_size_bytes and gRPC message sizes must be positive"},
		{name: "queue", change: func(c *Config) { c.Queue.MaxOutstandingPerTenant = 0 }, wantErr: "frontend: max_outstanding_requests_per_tenant must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
			tc.change(&c)
			err := c.Validate()
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
		})
	}

	t.Run("scheduler mode needs the address", func(t *testing.T) {
		var c Config
		c.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
		c.SchedulerAddress = []string{"a:1"}
		_, err := New(c, slog.New(slog.DiscardHandler), nil)
		require.ErrorContains(t, err, "frontend address is required")
	})
}

func TestHTTPRoundTripper(t *testing.T) {
	rt := HTTPRoundTripper(roundTripFunc(func(ctx context.Context, req *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error) {
		id, err := tenant.FromContext(ctx)
		if err != nil {
			return nil, err
		}
		return &frontendpb.HTTPResponse{
			Code:    http.StatusTeapot,
			Headers: []*frontendpb.Header{{Name: "Content-Type", Values: []string{"text/plain"}}},
			Body:    []byte(id + " " + req.GetUrl()),
		}, nil
	}))

	r := httptest.NewRequest(http.MethodGet, "/api/v1/query_range?query=up", nil)
	resp, err := rt.RoundTrip(r.WithContext(tenant.WithTenant(r.Context(), "team-a")))
	require.NoError(t, err)
	require.Equal(t, http.StatusTeapot, resp.StatusCode)
	require.Equal(t, "text/plain", resp.Header.Get("Content-Type"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "team-a /api/v1/query_range?query=up", string(body))
	// The whole body, unread, for a caller to keep without copying.
	whole, ok := resp.Body.(interface{ Bytes() []byte })
	require.True(t, ok)
	require.Equal(t, "team-a /api/v1/query_range?query=up", string(whole.Bytes()))
	require.NoError(t, resp.Body.Close())

	_, err = rt.RoundTrip(httptest.NewRequest(http.MethodGet, "/", nil))
	require.ErrorIs(t, err, tenant.ErrMissing)
}
