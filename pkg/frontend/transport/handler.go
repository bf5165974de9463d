package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/frontendpb"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// StatusClientClosedRequest is the status of a request whose client went
// away (nginx's 499); nobody reads it but logs and metrics.
const StatusClientClosedRequest = 499

// StatusCode is the HTTP status of a RoundTrip error: 429 for too many
// requests, 502 when the querier or scheduler failed (another one may
// succeed), 503 when the frontend is stopping or has no scheduler, 504 past
// the deadline, 401 without a tenant, 500 otherwise.
func StatusCode(err error) int {
	var maxBytes *http.MaxBytesError
	switch {
	case errors.Is(err, ErrTooManyRequests):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrQuerierFailed), errors.Is(err, ErrSchedulerFailed):
		return http.StatusBadGateway
	case errors.Is(err, ErrStopped), errors.Is(err, ErrNoScheduler):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return StatusClientClosedRequest
	case errors.Is(err, tenant.ErrMissing):
		return http.StatusUnauthorized
	case errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusInternalServerError
}

// NewHandler returns an http.Handler that sends each request through rt and
// writes the querier's answer, or StatusCode of the error. The tenant must
// be in the request context (tenant.Middleware). Bodies larger than
// maxBodySize get 413. With logStats, each request's statistics are logged.
func NewHandler(rt RoundTripper, maxBodySize int64, logStats bool, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, maxBodySize)
		req, err := frontendpb.FromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), StatusCode(err))
			return
		}
		ctx := r.Context()
		var stats *Stats
		if logStats {
			stats = &Stats{}
			ctx = WithStats(ctx, stats)
		}
		resp, err := rt.RoundTrip(ctx, req)
		code := 0
		if err != nil {
			code = StatusCode(err)
			http.Error(w, err.Error(), code)
		} else {
			code = int(resp.GetCode())
			h := w.Header()
			for _, e := range resp.GetHeaders() {
				h[http.CanonicalHeaderKey(e.GetName())] = e.GetValues()
			}
			w.WriteHeader(code)
			_, _ = w.Write(resp.GetBody())
		}
		if logStats {
			tenantID, _ := tenant.FromContext(ctx)
			logger.Info("query stats", "component", "query-frontend", "tenant", tenantID, "method", r.Method,
				"path", r.URL.Path, "status", code, "duration", time.Since(start),
				"querier_wall_time", time.Duration(stats.WallTime.Load()), "fetched_series", stats.FetchedSeries.Load(),
				"fetched_chunks", stats.FetchedChunks.Load(), "fetched_bytes", stats.FetchedBytes.Load())
		}
	})
}

// HTTPRoundTripper adapts rt to http.RoundTripper, for code that builds
// *http.Request values (the range-query middlewares): the tenant must be in
// the request's context. RoundTrip errors stay errors (map them with
// StatusCode); every answer of a querier is a response. A response's Body
// holds the whole answer in memory, and has a method Bytes() []byte that
// returns it, for a caller that reads it all, unread, to keep without
// copying (the answer is the caller's alone).
func HTTPRoundTripper(rt RoundTripper) http.RoundTripper {
	return httpRoundTripper{rt: rt}
}

type httpRoundTripper struct{ rt RoundTripper }

func (h httpRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	req, err := frontendpb.FromHTTPRequest(r)
	if err != nil {
		return nil, err
	}
	if r.Body != nil {
		r.Body.Close()
	}
	resp, err := h.rt.RoundTrip(r.Context(), req)
	if err != nil {
		return nil, err
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", resp.GetCode(), http.StatusText(int(resp.GetCode()))),
		StatusCode:    int(resp.GetCode()),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        frontendpb.ToHTTPHeader(resp.GetHeaders()),
		Body:          bodyReader{Reader: bytes.NewReader(resp.GetBody()), b: resp.GetBody()},
		ContentLength: int64(len(resp.GetBody())),
		Request:       r,
	}, nil
}

// bodyReader is an answer's body, held in memory.
type bodyReader struct {
	*bytes.Reader
	b []byte
}

// Close does nothing.
func (bodyReader) Close() error { return nil }

// Bytes returns the whole body, however much of it was read.
func (r bodyReader) Bytes() []byte { return r.b }
