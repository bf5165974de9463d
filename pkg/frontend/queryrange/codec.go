package queryrange

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/timestamp"

	"github.com/neocortex-metrics/neocortex/pkg/tenant"

	"github.com/neocortex-metrics/neocortex/pkg/promjson"
)

// maxPoints is Prometheus's limit of points per series in a range query.
const maxPoints = 11000

// Prometheus API values.
const (
	statusSuccess = "success"
	statusError   = "error"

	errorTypeBadData  = "bad_data"
	errorTypeInternal = "internal"
	errorTypeCanceled = "canceled"
	errorTypeTimeout  = "timeout"
)

var (
	// errUnsupportedNode is returned for a query node the rewrite does not
	// know: the query is then sent on whole.
	errUnsupportedNode = errors.New("unsupported query node")
	// errStopInspect stops parser.Inspect.
	errStopInspect = errors.New("stop")
	// errCorrupt is returned for cached extents that cannot be read.
	errCorrupt = errors.New("corrupt cached extents")
	// errShort is returned for cached extents cut short.
	errShort = errors.New("unexpected end")
)

// BadDataError is a request the frontend refuses as Prometheus would: it
// is answered 400 with errorType bad_data.
type BadDataError struct {
	Err error
}

// Error returns the reason, as Prometheus words it.
func (e *BadDataError) Error() string { return e.Err.Error() }

// Unwrap returns the reason.
func (e *BadDataError) Unwrap() error { return e.Err }

func invalidParam(name string, err error) error {
	return &BadDataError{Err: fmt.Errorf("invalid parameter %q: %w", name, err)}
}

// The bounds of Prometheus's API for optional times, which its time parser
// accepts in RFC3339 although their years have more than four digits.
var (
	minTime          = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime          = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()
	minTimeFormatted = minTime.Format(time.RFC3339Nano)
	maxTimeFormatted = maxTime.Format(time.RFC3339Nano)
)

// DecodeRequest reads a range query from the form of r (URL query and, for
// POST, the body), with Prometheus's rules and error messages: start and
// end in RFC3339 or Unix seconds, step in seconds or as a duration, end not
// before start, step positive, at most 11,000 points per series. Times are
// kept in milliseconds, as the engine counts, so a step below 1ms is
// refused too (Prometheus's API takes it, though its engine steps in whole
// milliseconds). An invalid request is a *BadDataError. Cache-Control: no-store disables the
// results cache for the request.
func DecodeRequest(r *http.Request) (*Request, error) {
	if err := r.ParseForm(); err != nil {
		return nil, &BadDataError{Err: fmt.Errorf("parse form: %w", err)}
	}
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return nil, invalidParam("start", err)
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		return nil, invalidParam("end", err)
	}
	if end.Before(start) {
		return nil, invalidParam("end", errors.New("end timestamp must not be before start time"))
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		return nil, invalidParam("step", err)
	}
	// The engine counts in whole milliseconds: a step below 1ms is zero.
	if step < time.Millisecond {
		return nil, invalidParam("step", errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"))
	}
	if end.Sub(start)/step > maxPoints {
		return nil, &BadDataError{Err: errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")}
	}
	req := &Request{
		Path:  r.URL.Path,
		Start: timestamp.FromTime(start),
		End:   timestamp.FromTime(end),
		Step:  step.Milliseconds(),
		Query: r.FormValue("query"),
	}
	for _, v := range r.Header.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-store") {
				req.Options.CacheDisabled = true
			}
		}
	}
	return req, nil
}

// parseTime is Prometheus's web/api/v1 parseTime.
func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		s, ns := math.Modf(t)
		ns = math.Round(ns*1000) / 1000
		return time.Unix(int64(s), int64(ns*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTimeFormatted:
		return minTime, nil
	case maxTimeFormatted:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseDuration is Prometheus's web/api/v1 parseDuration.
func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if math.IsNaN(ts) || ts >= float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// EncodeRequest returns r as a GET request to r.Path for ctx, its values
// written so that Prometheus parses them back exactly, with the tenant of
// ctx, if any, in X-Scope-OrgID.
func EncodeRequest(ctx context.Context, r *Request) (*http.Request, error) {
	params := url.Values{
		"start": {formatMillis(r.Start)},
		"end":   {formatMillis(r.End)},
		"step":  {formatStep(r.Step)},
		"query": {r.Query},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.Path+"?"+params.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if id, err := tenant.FromContext(ctx); err == nil {
		req.Header.Set(tenant.Header, id)
	}
	if r.Options.CacheDisabled {
		req.Header.Set("Cache-Control", "no-store")
	}
	return req, nil
}

// formatMillis writes t as Unix seconds with the milliseconds as decimals
// (as Prometheus writes timestamps), which its time parser reads back to
// the millisecond.
func formatMillis(t int64) string {
	return string(promjson.AppendTimestamp(nil, t))
}

// formatStep writes whole seconds as a number and other steps as a
// duration ("1s500ms"): a fraction of a second in float seconds could come
// back a nanosecond short, and the engine truncates to milliseconds.
func formatStep(step int64) string {
	if step%1000 == 0 {
		return strconv.FormatInt(step/1000, 10)
	}
	return model.Duration(time.Duration(step) * time.Millisecond).String()
}

// DecodeResponse reads a downstream answer. Any status but 200 is an
// *HTTPError with the body and headers; a 200 whose body is not a
// successful matrix answer is an error, never an empty result. The series
// are only checked to be well-nested JSON, and decoded when first read
// (Response.Result): an answer passed on unchanged is never decoded, and
// one that is cached is decoded after it is written (see NewHTTPHandler).
func DecodeResponse(r *http.Response) (*Response, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	if r.StatusCode != http.StatusOK {
		return nil, &HTTPError{Code: r.StatusCode, Header: r.Header.Clone(), Body: body}
	}
	resp, series, err := skimJSONResponse(body)
	if err == nil {
		err = checkResponse(resp)
	}
	if err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if !series {
		// An empty result costs nothing to encode, and may have come as
		// null.
		resp.Data.Result = model.Matrix{}
		return resp, nil
	}
	resp.lazy = &lazyResult{body: body}
	if isJSON(r.Header) {
		resp.raw = body
	}
	return resp, nil
}

// maxBodyHint bounds the buffer readBody allocates on the word of
// Content-Length alone.
const maxBodyHint = 1 << 30

// readBody reads the whole body into one buffer of its Content-Length,
// when known, rather than growing one by doubling; a body already in
// memory (transport.HTTPRoundTripper's, which has Bytes) it takes as it is.
func readBody(r *http.Response) ([]byte, error) {
	if b, ok := r.Body.(interface{ Bytes() []byte }); ok {
		return b.Bytes(), nil
	}
	if r.ContentLength <= 0 || r.ContentLength > maxBodyHint {
		return io.ReadAll(r.Body)
	}
	var buf bytes.Buffer
	buf.Grow(int(r.ContentLength) + bytes.MinRead)
	_, err := buf.ReadFrom(r.Body)
	return buf.Bytes(), err
}

// isJSON is whether a downstream answer says it is the JSON
// WriteResponse writes, so that it may be passed on as it came.
func isJSON(h http.Header) bool {
	ct := h.Get("Content-Type")
	return ct == "application/json" || strings.HasPrefix(ct, "application/json;")
}

// decodeSeriesBody decodes the series of a whole successful matrix
// answer; their label strings point into body, which must not change.
func decodeSeriesBody(body []byte) ([]series, error) {
	resp, ss, err := decodeJSONResponse(body)
	if err == nil {
		err = checkResponse(resp)
	}
	if err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if ss == nil {
		ss = []series{}
	}
	return ss, nil
}

// checkResponse refuses a body that is not a successful matrix answer.
func checkResponse(resp *Response) error {
	if resp.Status != statusSuccess {
		return fmt.Errorf("status %q with 200 OK: %s", resp.Status, resp.Error)
	}
	if resp.Data.ResultType != model.ValMatrix {
		return fmt.Errorf("result type %q, want matrix", resp.Data.ResultType)
	}
	return nil
}

// WriteResponse writes r with 200 OK, as Prometheus does: a downstream
// answer that reached it unchanged as it came, any other encoded, or the
// error of decoding its series (WriteError). It sets Content-Length, so
// that the client has the whole answer once it is written, whatever the
// handler does next.
func WriteResponse(w http.ResponseWriter, r *Response) {
	b := r.raw
	if b == nil {
		var err error
		if b, err = EncodeResponse(r); err != nil {
			WriteError(w, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// WriteError answers err. It is the one place errors become HTTP statuses:
// a downstream answer (*HTTPError) is passed on as it came, a
// *BadDataError is 400, a canceled request 499, a deadline 503, anything
// else 500, each in Prometheus's JSON error envelope.
func WriteError(w http.ResponseWriter, err error) {
	if he, ok := errors.AsType[*HTTPError](err); ok {
		for k, vs := range he.Header {
			switch http.CanonicalHeaderKey(k) {
			case "Content-Length", "Transfer-Encoding", "Connection":
				continue
			}
			w.Header()[k] = vs
		}
		w.WriteHeader(he.Code)
		_, _ = w.Write(he.Body)
		return
	}
	code, typ := http.StatusInternalServerError, errorTypeInternal
	switch {
	case errors.As(err, new(*BadDataError)):
		code, typ = http.StatusBadRequest, errorTypeBadData
	case errors.Is(err, context.Canceled):
		code, typ = 499, errorTypeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		code, typ = http.StatusServiceUnavailable, errorTypeTimeout
	}
	b, _ := EncodeResponse(&Response{Status: statusError, ErrorType: typ, Error: err.Error()}) // no series: no error
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
