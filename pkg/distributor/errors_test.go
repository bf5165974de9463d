package distributor

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"testing"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/ring"
	"github.com/stretchr/testify/require"
)

func TestHTTPError(t *testing.T) {
	for _, tc := range []struct {
		name           string
		err            error
		wantStatus     int
		wantMsg        string
		wantRetryAfter int
	}{
		{
			name:           "rate limited",
			err:            &rateLimitedError{msg: "ingestion rate limit exceeded", retryAfter: 7},
			wantStatus:     http.StatusTooManyRequests,
			wantMsg:        "ingestion rate limit exceeded",
			wantRetryAfter: 7,
		},
		{
			name:           "wrapped rate limited",
			err:            fmt.Errorf("push: %w", &rateLimitedError{msg: "slow down", retryAfter: 60}),
			wantStatus:     http.StatusTooManyRequests,
			wantMsg:        "slow down",
			wantRetryAfter: 60,
		},
		{
			name:       "too many unhealthy instances",
			err:        ring.ErrTooManyUnhealthyInstances,
			wantStatus: http.StatusServiceUnavailable,
			wantMsg:    "not enough healthy ingesters to write to: too many unhealthy instances in the ring",
		},
		{
			name:       "wrapped too many unhealthy instances",
			err:        fmt.Errorf("get replication set: %w", ring.ErrTooManyUnhealthyInstances),
			wantStatus: http.StatusServiceUnavailable,
			wantMsg:    "not enough healthy ingesters to write to: get replication set: too many unhealthy instances in the ring",
		},
		{
			name:       "empty ring",
			err:        ring.ErrEmptyRing,
			wantStatus: http.StatusServiceUnavailable,
			wantMsg:    "not enough healthy ingesters to write to: empty ring",
		},
		{
			name:       "ingester error",
			err:        &ingesterError{err: errors.New("connection refused")},
			wantStatus: http.StatusInternalServerError,
			wantMsg:    "write to ingesters failed to reach a quorum: connection refused",
		},
		{
			name:       "ingester error with an ingester's 5xx",
			err:        &ingesterError{err: httpgrpc.Errorf(http.StatusInternalServerError, "TSDB is closed")},
			wantStatus: http.StatusInternalServerError,
			wantMsg:    "write to ingesters failed to reach a quorum: TSDB is closed",
		},
		{
			name:       "ingester error from a ring without instances",
			err:        &ingesterError{err: errors.New("DoBatch: InstancesCount <= 0")},
			wantStatus: http.StatusServiceUnavailable,
			wantMsg:    "not enough healthy ingesters to write to: DoBatch: InstancesCount <= 0",
		},
		{
			name:       "ingester error from too many unhealthy instances",
			err:        &ingesterError{err: ring.ErrTooManyUnhealthyInstances},
			wantStatus: http.StatusServiceUnavailable,
			wantMsg:    "not enough healthy ingesters to write to: too many unhealthy instances in the ring",
		},
		{
			name:       "ingester error from an empty ring",
			err:        &ingesterError{err: ring.ErrEmptyRing},
			wantStatus: http.StatusServiceUnavailable,
			wantMsg:    "not enough healthy ingesters to write to: empty ring",
		},
		{
			name:       "client error",
			err:        httpgrpc.Errorf(http.StatusBadRequest, "x"),
			wantStatus: http.StatusBadRequest,
			wantMsg:    "x",
		},
		{
			name:       "ingester's own rate limit carries no retry-after",
			err:        httpgrpc.Errorf(http.StatusTooManyRequests, "per-tenant series limit"),
			wantStatus: http.StatusTooManyRequests,
			wantMsg:    "per-tenant series limit",
		},
		{
			name:       "unknown error",
			err:        errors.New("boom"),
			wantStatus: http.StatusInternalServerError,
			wantMsg:    "boom",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, msg, retryAfter := httpError(tc.err)
			require.Equal(t, tc.wantStatus, status)
			require.Equal(t, tc.wantRetryAfter, retryAfter)
			require.Equal(t, tc.wantMsg, msg)
		})
	}
}

func TestIsClientError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{name: "400", err: httpgrpc.Errorf(http.StatusBadRequest, "bad"), want: true},
		{name: "404", err: httpgrpc.Errorf(http.StatusNotFound, "not found"), want: true},
		{name: "429", err: httpgrpc.Errorf(http.StatusTooManyRequests, "limit"), want: true},
		{name: "wrapped 400", err: fmt.Errorf("push: %w", httpgrpc.Errorf(http.StatusBadRequest, "bad")), want: true},
		{name: "500", err: httpgrpc.Errorf(http.StatusInternalServerError, "oops"), want: false},
		{name: "503", err: httpgrpc.Errorf(http.StatusServiceUnavailable, "down"), want: false},
		{name: "plain", err: errors.New("bad request"), want: false},
		{name: "ingester error", err: &ingesterError{err: errors.New("x")}, want: false},
		{name: "nil", err: nil, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, isClientError(tc.err))
		})
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		rate float64
		want int
	}{
		{name: "rate zero", n: 10, rate: 0, want: 1},
		{name: "rate negative", n: 10, rate: -5, want: 1},
		{name: "rate infinite", n: 10, rate: math.Inf(1), want: 1},
		{name: "21 samples at 10/s", n: 21, rate: 10, want: 3},
		{name: "20 samples at 10/s", n: 20, rate: 10, want: 2},
		{name: "fraction of a second rounds up", n: 1, rate: 10, want: 1},
		{name: "no samples is at least 1", n: 0, rate: 10, want: 1},
		{name: "exactly 60", n: 600, rate: 10, want: 60},
		{name: "clamped to 60", n: 601, rate: 10, want: 60},
		{name: "far beyond 60", n: 1_000_000, rate: 0.5, want: 60},
		{name: "fractional rate", n: 3, rate: 2.5, want: 2},
		{
			name: "wait beyond int range clamps to 60",
			n:    1, rate: math.SmallestNonzeroFloat64, want: 60,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, retryAfter(tc.n, tc.rate))
		})
	}
}
