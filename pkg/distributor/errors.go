package distributor

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/ring"
)

// rateLimitedError is a push refused by the tenant's ingestion rate limit.
type rateLimitedError struct {
	msg        string
	retryAfter int // seconds
}

func (e *rateLimitedError) Error() string { return e.msg }

// ingesterError is a push that did not reach a quorum of ingesters.
type ingesterError struct{ err error }

func (e *ingesterError) Error() string {
	return fmt.Sprintf("write to ingesters failed to reach a quorum: %s", errMessage(e.err))
}

func (e *ingesterError) Unwrap() error { return e.err }

// errNoInstances is how dskit's DoBatch reports an empty ring.
const errNoInstances = "DoBatch: InstancesCount <= 0"

// noIngesters tells whether err says the ring has too few healthy ingesters.
func noIngesters(err error) bool {
	return errors.Is(err, ring.ErrTooManyUnhealthyInstances) || errors.Is(err, ring.ErrEmptyRing) || err.Error() == errNoInstances
}

// isClientError tells whether an ingester's answer blames the request (4xx),
// so that retrying it elsewhere cannot help.
func isClientError(err error) bool {
	if resp, ok := httpgrpc.HTTPResponseFromError(err); ok {
		return resp.Code/100 == 4
	}
	return false
}

// errMessage is the message of err without gRPC decoration.
func errMessage(err error) string {
	if resp, ok := httpgrpc.HTTPResponseFromError(err); ok {
		return string(resp.Body)
	}
	return err.Error()
}

// httpError maps a Push error to an HTTP status, a message and, for rate
// limits, a Retry-After in seconds. This is the only place that does so.
func httpError(err error) (status int, msg string, retryAfter int) {
	var rl *rateLimitedError
	var ie *ingesterError
	switch {
	case errors.As(err, &rl):
		return http.StatusTooManyRequests, rl.msg, rl.retryAfter
	case errors.As(err, &ie):
		if noIngesters(ie.err) {
			return http.StatusServiceUnavailable, fmt.Sprintf("not enough healthy ingesters to write to: %s", ie.err), 0
		}
		return http.StatusInternalServerError, ie.Error(), 0
	case noIngesters(err):
		return http.StatusServiceUnavailable, fmt.Sprintf("not enough healthy ingesters to write to: %s", err), 0
	}
	if resp, ok := httpgrpc.HTTPResponseFromError(err); ok {
		return int(resp.Code), string(resp.Body), 0
	}
	return http.StatusInternalServerError, err.Error(), 0
}
