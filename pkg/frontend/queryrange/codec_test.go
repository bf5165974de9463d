package queryrange

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

func TestDecodeRequest(t *testing.T) {
	const path = "/prometheus/api/v1/query_range"
	rows := []struct {
		name    string
		method  string
		params  string
		header  http.Header
		want    *Request
		wantErr string
	}{
		{name: "unix seconds", method: http.MethodGet, params: "query=up&start=100&end=200.5&step=15",
			want: &Request{Path: path, Query: "up", Start: 100000, End: 200500, Step: 15000}},
		{name: "milliseconds and a fractional step", method: http.MethodGet, params: "query=up&start=1.001&end=2.999&step=0.5",
			want: &Request{Path: path, Query: "up", Start: 1001, End: 2999, Step: 500}},
		{name: "rfc3339 and a duration", method: http.MethodGet, params: "query=up&start=2024-01-02T03:04:05.678Z&end=2024-01-02T05:00:00%2B01:00&step=1m30s",
			want: &Request{Path: path, Query: "up", Start: 1704164645678, End: 1704168000000, Step: 90000}},
		{name: "post form", method: http.MethodPost, params: "query=sum(rate(x[5m]))&start=0&end=3600&step=60",
			want: &Request{Path: path, Query: "sum(rate(x[5m]))", Start: 0, End: 3600000, Step: 60000}},
		{name: "negative times", method: http.MethodGet, params: "query=up&start=-10.5&end=-1&step=1",
			want: &Request{Path: path, Query: "up", Start: -10500, End: -1000, Step: 1000}},
		{name: "no-store", method: http.MethodGet, params: "query=up&start=0&end=1&step=1", header: http.Header{"Cache-Control": {"max-age=0, No-Store"}},
			want: &Request{Path: path, Query: "up", Start: 0, End: 1000, Step: 1000, Options: Options{CacheDisabled: true}}},
		{name: "11000 points", method: http.MethodGet, params: "query=up&start=0&end=11000&step=1",
			want: &Request{Path: path, Query: "up", Start: 0, End: 11000000, Step: 1000}},
		{name: "bad start", method: http.MethodGet, params: "query=up&start=yesterday&end=1&step=1",
			wantErr: `invalid parameter "start": cannot parse "yesterday" to a valid timestamp`},
		{name: "missing end", method: http.MethodGet, params: "query=up&start=1&step=1",
			wantErr: `invalid parameter "end": cannot parse "" to a valid timestamp`},
		{name: "end before start", method: http.MethodGet, params: "query=up&start=2&end=1&step=1",
			wantErr: `invalid parameter "end": end timestamp must not be before start time`},
		{name: "bad step", method: http.MethodGet, params: "query=up&start=1&end=2&step=often",
			wantErr: `invalid parameter "step": cannot parse "often" to a valid duration`},
		{name: "zero step", method: http.MethodGet, params: "query=up&start=1&end=2&step=0",
			wantErr: `invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer`},
		{name: "negative step", method: http.MethodGet, params: "query=up&start=1&end=2&step=-5",
			wantErr: `invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer`},
		{name: "over 11000 points", method: http.MethodGet, params: "query=up&start=0&end=11001&step=1",
			wantErr: `exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)`},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			var r *http.Request
			if row.method == http.MethodPost {
				r = httptest.NewRequest(http.MethodPost, path, strings.NewReader(row.params))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			} else {
				r = httptest.NewRequest(http.MethodGet, path+"?"+row.params, nil)
			}
			for k, vs := range row.header {
				r.Header[k] = vs
			}
			got, err := DecodeRequest(r)
			if row.wantErr != "" {
				require.EqualError(t, err, row.wantErr)
				require.True(t, errors.As(err, new(*BadDataError)))
				return
			}
			require.NoError(t, err)
			require.Equal(t, row.want, got)
		})
	}
}

// TestEncodeRequestRoundTrip requires the values EncodeRequest writes to
// read back, with Prometheus's parsing rules, to the very milliseconds.
func TestEncodeRequestRoundTrip(t *testing.T) {
	rows := []*Request{
		{Path: "/api/v1/query_range", Query: `sum(rate(x{a="b c&d"}[5m]))`, Start: 1700000000123, End: 1700086400999, Step: 15000},
		{Path: "/api/v1/query_range", Query: "up", Start: -1500, End: 0, Step: 1},
		{Path: "/api/v1/query_range", Query: "up", Start: 1, End: 300, Step: 299},
		{Path: "/api/v1/query_range", Query: "up", Start: 0, End: 3000, Step: 300, Options: Options{CacheDisabled: true}},
	}
	// Every step from 1ms to 10s, the float-seconds pitfalls included.
	for step := int64(1); step <= 10000; step++ {
		rows = append(rows, &Request{Path: "/q", Query: "up", Start: 1700000000000 + step, End: 1700000000000 + 2*step, Step: step})
	}
	ctx := tenant.WithTenant(context.Background(), "team-a")
	for _, want := range rows {
		hr, err := EncodeRequest(ctx, want)
		require.NoError(t, err)
		require.Equal(t, http.MethodGet, hr.Method)
		require.Equal(t, "team-a", hr.Header.Get(tenant.Header))
		got, err := DecodeRequest(hr)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
}

func TestDecodeResponse(t *testing.T) {
	rows := []struct {
		name    string
		code    int
		body    string
		want    *Response
		wantErr string
		// wantSeriesErr is the error of reading the series, which
		// DecodeResponse only checks to be well-nested JSON.
		wantSeriesErr string
	}{
		{name: "matrix", code: 200, body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"2"]]}]},"warnings":["w"]}`,
			want: &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: model.Matrix{{Metric: model.Metric{"a": "b"}, Values: []model.SamplePair{{Timestamp: 1000, Value: 2}}}}}, Warnings: []string{"w"}}},
		{name: "empty matrix", code: 200, body: `{"status":"success","data":{"resultType":"matrix","result":[]}}`,
			want: &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: model.Matrix{}}}},
		{name: "truncated", code: 200, body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"2"]`,
			wantErr: "decode response: offset 97: unexpected end of input"},
		{name: "bad value", code: 200, body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"two"]]}]}}`,
			wantSeriesErr: `decode response: offset 91: invalid sample value "two"`},
		{name: "series not nested", code: 200, body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"]}]}}`,
			wantErr: "decode response: offset 78: unexpected ']'"},
		{name: "series not closed", code: 200, body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b\"]}]}}`,
			wantErr: "decode response: offset 84: unexpected end of input"},
		{name: "control character in the series", code: 200, body: "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{\"a\":\"\n\"}}]}}",
			wantErr: "decode response: offset 76: control character in string"},
		{name: "series not an array", code: 200, body: `{"status":"success","data":{"resultType":"matrix","result":{}}}`,
			wantErr: "decode response: offset 59: unexpected '{' want '['"},
		{name: "not json", code: 200, body: `<html>gateway</html>`, wantErr: `decode response: offset 0: unexpected '<' want '{'`},
		{name: "trailing data", code: 200, body: `{"status":"success","data":{"resultType":"matrix","result":[]}} {}`, wantErr: "decode response: offset 64: data after the JSON value"},
		{name: "vector", code: 200, body: `{"status":"success","data":{"resultType":"vector","result":[]}}`, wantErr: `decode response: result type "vector", want matrix`},
		{name: "error with 200", code: 200, body: `{"status":"error","errorType":"execution","error":"boom"}`, wantErr: `decode response: status "error" with 200 OK: boom`},
		{name: "null series", code: 200, body: `{"status":"success","data":{"resultType":"matrix","result":[null]}}`, wantSeriesErr: "decode response: offset 64: null series"},
		{name: "null histogram", code: 200, body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"histograms":[[1,null]]}]}}`, wantSeriesErr: "decode response: offset 94: null histogram"},
		{name: "bad timestamp", code: 200, body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[["1","2"]]}]}}`, wantSeriesErr: "decode response: offset 84: invalid timestamp"},
		{name: "bad escape", code: 200, body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"\q"},"values":[]}]}}`, wantSeriesErr: `decode response: offset 78: invalid escape 'q'`},
		{name: "unknown fields, escapes, spacing, result before its type", code: 200, body: ` { "data" : { "result" : [ { "metric" : { "a\u00e9\/" : "\ud83d\ude00\n\"" , "x": "\u0000" } , "values" : [ [ -1.5 , "NaN" ] , [ 2 , "-Inf" ] ] , "extra" : [ 1, -2.5e3, true, false, null, {"k": ["v"]} ] } ] , "resultType" : "matrix", "stats": {"timings": {"evalTotalTime": 0.01}} } , "status" : "success" , "warnings" : null, "infos": ["i"] } `,
			want: &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: model.Matrix{{Metric: model.Metric{"aé/": "\U0001F600\n\"", "x": "\x00"}, Values: []model.SamplePair{{Timestamp: -1500, Value: model.SampleValue(math.NaN())}, {Timestamp: 2000, Value: model.SampleValue(math.Inf(-1))}}}}}, Infos: []string{"i"}}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			got, err := DecodeResponse(&http.Response{StatusCode: row.code, Body: io.NopCloser(strings.NewReader(row.body))})
			if row.wantErr != "" {
				require.EqualError(t, err, row.wantErr)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			m, err := got.Result()
			if row.wantSeriesErr != "" {
				require.EqualError(t, err, row.wantSeriesErr)
				_, err = EncodeResponse(got)
				require.EqualError(t, err, row.wantSeriesErr)
				return
			}
			require.NoError(t, err)
			// Bytes compare NaN equal to NaN.
			require.Equal(t, encode(t, row.want), encode(t, got))
			require.Len(t, m, len(row.want.Data.Result))
		})
	}

	t.Run("every truncation is an error", func(t *testing.T) {
		body := `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b\n"},"values":[[1.5,"2"]],"histograms":[[3,{"count":"1","sum":"2","buckets":[[0,"1","2","1"]]}]]}]},"warnings":["w"]}`
		_, err := decodeResponseBody([]byte(body))
		require.NoError(t, err)
		for i := range len(body) {
			_, err := decodeResponseBody([]byte(body[:i]))
			require.Error(t, err, "truncated at %d", i)
			_, err = DecodeResponse(&http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(body[:i]))})
			require.Error(t, err, "truncated at %d", i)
		}
	})

	t.Run("non-200 is an HTTPError", func(t *testing.T) {
		body := `{"status":"error","errorType":"execution","error":"too many samples"}`
		_, err := DecodeResponse(&http.Response{StatusCode: 422, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))})
		he, ok := errors.AsType[*HTTPError](err)
		require.True(t, ok)
		require.Equal(t, &HTTPError{Code: 422, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)}, he)
	})
}

// TestWriteResponsePassThrough: a downstream answer that reaches
// WriteResponse unchanged is written as it came (here with spacing no
// encoder writes, to tell the two apart); any other is encoded.
func TestWriteResponsePassThrough(t *testing.T) {
	const (
		spaced    = `{"status":"success", "data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"2"]]}]},"warnings":["w"]}`
		canonical = `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"2"]]}]},"warnings":["w"]}`
		twice     = `{"status":"success", "data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"2"]]}]},"warnings":["w","w"]}`
		empty     = `{"status":"success", "data":{"resultType":"matrix","result":null}}`
	)
	decode := func(t *testing.T, body, contentType string) *Response {
		h := http.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		resp, err := DecodeResponse(&http.Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))})
		require.NoError(t, err)
		return resp
	}
	rows := []struct {
		name string
		resp func(t *testing.T) *Response
		want string
	}{
		{"as it came", func(t *testing.T) *Response { return decode(t, spaced, "application/json") }, spaced},
		{"with a charset", func(t *testing.T) *Response { return decode(t, spaced, "application/json; charset=utf-8") }, spaced},
		{"not said to be JSON", func(t *testing.T) *Response { return decode(t, spaced, "") }, canonical},
		{"empty result", func(t *testing.T) *Response { return decode(t, empty, "application/json") },
			`{"status":"success","data":{"resultType":"matrix","result":[]}}`},
		{"the one part of a merge", func(t *testing.T) *Response {
			return must[*Response](t)(mergeResponses([]*Response{decode(t, spaced, "application/json")}))
		}, spaced},
		{"duplicate warnings merged", func(t *testing.T) *Response {
			return must[*Response](t)(mergeResponses([]*Response{decode(t, twice, "application/json")}))
		}, canonical},
		{"two parts merged", func(t *testing.T) *Response {
			r := decode(t, spaced, "application/json")
			return must[*Response](t)(mergeResponses([]*Response{r, r}))
		}, canonical},
		{"clipped", func(t *testing.T) *Response {
			return must[*Response](t)(clipResponse(decode(t, spaced, "application/json"), 0, 5000))
		},
			`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"2"]]}]},"warnings":["w"]}`},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteResponse(w, row.resp(t))
			require.Equal(t, http.StatusOK, w.Code)
			require.Equal(t, "application/json", w.Header().Get("Content-Type"))
			require.Equal(t, row.want, w.Body.String())
		})
	}
}

func TestWriteError(t *testing.T) {
	rows := []struct {
		name     string
		err      error
		wantCode int
		wantBody string
		wantType string
	}{
		{"bad data", invalidParam("step", errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer")), 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"}`, "application/json"},
		{"downstream answer passed on", &HTTPError{Code: 422, Header: http.Header{"Content-Type": {"application/json"}, "Content-Length": {"3"}}, Body: []byte(`{"status":"error","errorType":"execution","error":"x"}`)}, 422,
			`{"status":"error","errorType":"execution","error":"x"}`, "application/json"},
		{"canceled", context.Canceled, 499, `{"status":"error","errorType":"canceled","error":"context canceled"}`, "application/json"},
		{"deadline", context.DeadlineExceeded, 503, `{"status":"error","errorType":"timeout","error":"context deadline exceeded"}`, "application/json"},
		{"other", errors.New("queue full <now>"), 500, `{"status":"error","errorType":"internal","error":"queue full \u003cnow\u003e"}`, "application/json"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteError(w, row.err)
			require.Equal(t, row.wantCode, w.Code)
			require.Equal(t, row.wantBody, w.Body.String())
			require.Equal(t, row.wantType, w.Header().Get("Content-Type"))
		})
	}
}

func TestHTTPHandler(t *testing.T) {
	var got *Request
	h := NewHTTPHandler(HandlerFunc(func(_ context.Context, r *Request) (*Response, error) {
		got = r
		return &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: model.Matrix{
			{Metric: model.Metric{"a": "<b>"}, Values: []model.SamplePair{{Timestamp: 60000, Value: 1e-7}}},
		}}}, nil
	}), nil)

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/query_range?"+url.Values{"query": {"up"}, "start": {"60"}, "end": {"120"}, "step": {"1m"}}.Encode(), nil))
	require.Equal(t, 200, w.Code)
	require.Equal(t, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"<b>"},"values":[[60,"1e-07"]]}]}}`, w.Body.String())
	require.Equal(t, &Request{Path: "/api/v1/query_range", Query: "up", Start: 60000, End: 120000, Step: time.Minute.Milliseconds()}, got)

	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/query_range?query=up&start=2&end=1&step=1", nil))
	require.Equal(t, 400, w.Code)
	require.Equal(t, `{"status":"error","errorType":"bad_data","error":"invalid parameter \"end\": end timestamp must not be before start time"}`, w.Body.String())
}
