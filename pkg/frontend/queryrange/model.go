// Package queryrange is the query-frontend's handling of range queries:
// splitting by interval, caching results, sharding and retrying, as
// middlewares around a Handler that sends a request downstream (to the
// queue that queriers pull from).
package queryrange

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/prometheus/common/model"
)

// Request is a Prometheus range query.
type Request struct {
	// Path is the URL path it was sent to, e.g. /prometheus/api/v1/query_range.
	Path string
	// Start and End are the evaluation range in milliseconds, inclusive;
	// Step is the resolution in milliseconds.
	Start, End, Step int64
	Query            string
	Options          Options
}

// Options change how the frontend handles one request.
type Options struct {
	// CacheDisabled bypasses the results cache (Cache-Control: no-store).
	CacheDisabled bool
	// ShardingDisabled keeps the query whole.
	ShardingDisabled bool
	// Parallel is how many parts of the split query this one runs beside
	// (itself included); 0 when the query is not split.
	Parallel int
}

// WithRange returns a copy of r over [start, end].
func (r *Request) WithRange(start, end int64) *Request {
	c := *r
	c.Start, c.End = start, end
	return &c
}

// WithQuery returns a copy of r with another query.
func (r *Request) WithQuery(q string) *Request {
	c := *r
	c.Query = q
	return &c
}

// Response is a Prometheus API answer to a range query. EncodeResponse
// writes it byte for byte as Prometheus's API does; encoding/json does not
// quite (it formats tiny and huge floats and escapes <, > and & in label
// values differently, see json.go).
//
// A Response from DecodeResponse may hold its series undecoded, in the
// body they came in, until something reads them; one from the results
// cache or a merge holds them in the frontend's own form (series), not as
// a model.Matrix: its Data.Result is then nil. Code that reads the series
// calls Result (or, in this package, series), never Data.Result, which is
// only for building a Response.
type Response struct {
	Status    string   `json:"status"`
	Data      Data     `json:"data"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`

	// raw is the downstream body this Response was decoded from
	// (DecodeResponse), which WriteResponse writes as it came instead of
	// encoding the Response again: the querier writes exactly what
	// EncodeResponse would. Only a Response that reaches WriteResponse
	// unchanged keeps it: middlewares build new Responses, never change
	// one they received.
	raw []byte
	// lazy, if not nil, holds the series, undecoded or as series; Result
	// makes a model.Matrix of them on first use. Responses built from this
	// one share it.
	lazy *lazyResult
}

// Result returns the series of r, decoding them first if DecodeResponse
// left them undecoded. It is safe to call from several goroutines; the
// matrix is shared and must not be changed.
func (r *Response) Result() (model.Matrix, error) {
	if r.lazy == nil {
		return r.Data.Result, nil
	}
	return r.lazy.result()
}

// series returns the series of r as the frontend holds them between
// decoding and encoding, decoding them first if need be. Those of
// Data.Result are converted at each call. They are shared and must not be
// changed.
func (r *Response) series() ([]series, error) {
	if r.lazy == nil {
		return matrixSeries(r.Data.Result), nil
	}
	return r.lazy.series()
}

// hasSeries is whether r holds a result, empty or not.
func (r *Response) hasSeries() bool {
	return r.lazy != nil || r.Data.Result != nil
}

// knownEmpty is whether r is known to have no series without decoding
// any.
func (r *Response) knownEmpty() bool {
	if r.lazy == nil {
		return len(r.Data.Result) == 0
	}
	return r.lazy.body == nil && len(r.lazy.ss) == 0
}

// lazyResult is a Response's series held as series: decoded from a body
// when first read, or given (cached extents, merged and clipped answers).
// A model.Matrix is built from them only when Result asks for one.
type lazyResult struct {
	// body, if not nil, is the JSON answer the series are decoded from; it
	// never changes: their label strings point into it.
	body []byte
	once sync.Once
	ss   []series
	err  error

	matrixOnce sync.Once
	matrix     model.Matrix
}

// givenSeries returns a lazyResult of ss, which must not change.
func givenSeries(ss []series) *lazyResult {
	if ss == nil {
		ss = []series{}
	}
	return &lazyResult{ss: ss}
}

func (l *lazyResult) series() ([]series, error) {
	if l.body != nil {
		l.once.Do(func() { l.ss, l.err = decodeSeriesBody(l.body) })
	}
	return l.ss, l.err
}

func (l *lazyResult) result() (model.Matrix, error) {
	ss, err := l.series()
	if err != nil {
		return nil, err
	}
	l.matrixOnce.Do(func() { l.matrix = seriesMatrix(ss) })
	return l.matrix, nil
}

// Data is a range query's result: always a matrix.
type Data struct {
	ResultType model.ValueType `json:"resultType"`
	Result     model.Matrix    `json:"result"`
}

// Handler answers range queries.
type Handler interface {
	// Do answers r. A downstream answer other than 200 is an *HTTPError.
	// The response is the caller's; Do keeps no reference to it.
	Do(ctx context.Context, r *Request) (*Response, error)
}

// HandlerFunc is a function that is a Handler.
type HandlerFunc func(ctx context.Context, r *Request) (*Response, error)

// Do calls f.
func (f HandlerFunc) Do(ctx context.Context, r *Request) (*Response, error) { return f(ctx, r) }

// Middleware wraps a Handler in another.
type Middleware func(Handler) Handler

// Chain applies middlewares so that the first is the outermost.
func Chain(h Handler, ms ...Middleware) Handler {
	for i := len(ms) - 1; i >= 0; i-- {
		h = ms[i](h)
	}
	return h
}

// HTTPError is a downstream answer other than 200, passed on as it came.
type HTTPError struct {
	Code   int
	Header http.Header
	Body   []byte
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("downstream answered %d: %s", e.Code, e.Body)
}
