package querier

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
)

// t0 is the timestamp of the first test sample, in ms.
const t0 = int64(1700000000000)

// newTestStorage returns a TSDB holding
//
//	up{job="a"} 1 2 3
//	up{job="b"} 10 20 30
//
// at t0, t0+15s and t0+30s.
func newTestStorage(t *testing.T) Queryable {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), slog.New(slog.DiscardHandler), nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })

	app := db.Appender(context.Background())
	for _, s := range []struct {
		job string
		vs  [3]float64
	}{{"a", [3]float64{1, 2, 3}}, {"b", [3]float64{10, 20, 30}}} {
		ls := labels.FromStrings("__name__", "up", "job", s.job)
		for i, v := range s.vs {
			_, err := app.Append(0, ls, t0+int64(i)*15000, v)
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	return db
}

func testConfig() Config {
	return Config{Timeout: 10 * time.Second, MaxSamples: 1e6, LookbackDelta: 5 * time.Minute, MaxConcurrentQueries: 2, RemoteReadMaxBytesInFrame: 1 << 20}
}

func newTestServer(t *testing.T, cfg Config) (*API, *httptest.Server) {
	t.Helper()
	api := NewAPI(cfg, newTestStorage(t), nil, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	mux := http.NewServeMux()
	api.Register(mux, "/prometheus", func(h http.Handler) http.Handler { return h })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return api, srv
}

type apiRequest struct {
	method string // GET or POST (form)
	path   string // "query" or "query_range"
	params url.Values
}

func (r apiRequest) do(t *testing.T, srv *httptest.Server) (int, string) {
	t.Helper()
	u := srv.URL + "/prometheus/api/v1/" + r.path
	var (
		resp *http.Response
		err  error
	)
	switch r.method {
	case http.MethodGet:
		resp, err = srv.Client().Get(u + "?" + r.params.Encode())
	case http.MethodPost:
		resp, err = srv.Client().PostForm(u, r.params)
	default:
		t.Fatalf("unsupported method %q", r.method)
	}
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	return resp.StatusCode, string(body)
}

func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func errorBody(typ, msg string) string {
	return fmt.Sprintf(`{"status":"error","errorType":%q,"error":%q}`, typ, msg)
}

func TestAPI(t *testing.T) {
	_, srv := newTestServer(t, testConfig())

	const (
		ts0  = "1700000000"
		ts15 = "1700000015"
		ts30 = "1700000030"
	)
	for _, tc := range []struct {
		name       string
		req        apiRequest
		wantStatus int
		wantBody   string
	}{
		{
			name:       "instant vector",
			req:        apiRequest{path: "query", params: vals("query", "sort(up)", "time", ts30)},
			wantStatus: http.StatusOK,
			wantBody: `{"status":"success","data":{"resultType":"vector","result":[
				{"metric":{"__name__":"up","job":"a"},"value":[1700000030,"3"]},
				{"metric":{"__name__":"up","job":"b"},"value":[1700000030,"30"]}]}}`,
		},
		{
			name:       "instant vector at a fractional time between samples",
			req:        apiRequest{path: "query", params: vals("query", `up{job="a"}`, "time", "1700000015.123")},
			wantStatus: http.StatusOK,
			wantBody: `{"status":"success","data":{"resultType":"vector","result":[
				{"metric":{"__name__":"up","job":"a"},"value":[1700000015.123,"2"]}]}}`,
		},
		{
			name:       "instant vector at RFC3339 time",
			req:        apiRequest{path: "query", params: vals("query", `up{job="b"}`, "time", "2023-11-14T22:13:20Z")},
			wantStatus: http.StatusOK,
			wantBody: `{"status":"success","data":{"resultType":"vector","result":[
				{"metric":{"__name__":"up","job":"b"},"value":[1700000000,"10"]}]}}`,
		},
		{
			name:       "instant vector with a function dropping the name",
			req:        apiRequest{path: "query", params: vals("query", `sum(up)`, "time", ts15)},
			wantStatus: http.StatusOK,
			wantBody:   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000015,"22"]}]}}`,
		},
		{
			name:       "empty vector",
			req:        apiRequest{path: "query", params: vals("query", "nonexistent", "time", ts30)},
			wantStatus: http.StatusOK,
			wantBody:   `{"status":"success","data":{"resultType":"vector","result":[]}}`,
		},
		{
			name:       "instant query by form POST",
			req:        apiRequest{method: http.MethodPost, path: "query", params: vals("query", `up{job="a"}`, "time", ts0)},
			wantStatus: http.StatusOK,
			wantBody: `{"status":"success","data":{"resultType":"vector","result":[
				{"metric":{"__name__":"up","job":"a"},"value":[1700000000,"1"]}]}}`,
		},
		{
			name:       "scalar",
			req:        apiRequest{path: "query", params: vals("query", "1.5 * 2", "time", ts30)},
			wantStatus: http.StatusOK,
			wantBody:   `{"status":"success","data":{"resultType":"scalar","result":[1700000030,"3"]}}`,
		},
		{
			name:       "string",
			req:        apiRequest{path: "query", params: vals("query", `"hello"`, "time", ts30)},
			wantStatus: http.StatusOK,
			wantBody:   `{"status":"success","data":{"resultType":"string","result":[1700000030,"hello"]}}`,
		},
		{
			name:       "range matrix",
			req:        apiRequest{path: "query_range", params: vals("query", "up", "start", ts0, "end", ts30, "step", "15")},
			wantStatus: http.StatusOK,
			wantBody: `{"status":"success","data":{"resultType":"matrix","result":[
				{"metric":{"__name__":"up","job":"a"},"values":[[1700000000,"1"],[1700000015,"2"],[1700000030,"3"]]},
				{"metric":{"__name__":"up","job":"b"},"values":[[1700000000,"10"],[1700000015,"20"],[1700000030,"30"]]}]}}`,
		},
		{
			name: "range matrix with step shorter than the scrape interval",
			req: apiRequest{path: "query_range", params: vals("query", `up{job="a"}`,
				"start", "2023-11-14T22:13:25Z", "end", "2023-11-14T22:14:05Z", "step", "10s")},
			wantStatus: http.StatusOK,
			wantBody: `{"status":"success","data":{"resultType":"matrix","result":[
				{"metric":{"__name__":"up","job":"a"},"values":[[1700000005,"1"],[1700000015,"2"],[1700000025,"2"],[1700000035,"3"],[1700000045,"3"]]}]}}`,
		},
		{
			name: "range matrix by form POST",
			req: apiRequest{method: http.MethodPost, path: "query_range",
				params: vals("query", `up{job="b"} * 2`, "start", ts15, "end", ts30, "step", "15")},
			wantStatus: http.StatusOK,
			wantBody: `{"status":"success","data":{"resultType":"matrix","result":[
				{"metric":{"job":"b"},"values":[[1700000015,"40"],[1700000030,"60"]]}]}}`,
		},
		{
			name:       "range with end equal to start",
			req:        apiRequest{path: "query_range", params: vals("query", `up{job="a"}`, "start", ts15, "end", ts15, "step", "15")},
			wantStatus: http.StatusOK,
			wantBody: `{"status":"success","data":{"resultType":"matrix","result":[
				{"metric":{"__name__":"up","job":"a"},"values":[[1700000015,"2"]]}]}}`,
		},
		{
			name:       "range with exactly 11000 steps",
			req:        apiRequest{path: "query_range", params: vals("query", "nonexistent", "start", "0", "end", "11000", "step", "1")},
			wantStatus: http.StatusOK,
			wantBody:   `{"status":"success","data":{"resultType":"matrix","result":[]}}`,
		},
		{
			name:       "bad promql",
			req:        apiRequest{path: "query", params: vals("query", "up{", "time", ts30)},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "query": 1:4: parse error: unexpected end of input inside braces`),
		},
		{
			name:       "missing query",
			req:        apiRequest{path: "query", params: vals("time", ts30)},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "query": unknown position: parse error: no expression found in input`),
		},
		{
			name:       "bad promql in range query",
			req:        apiRequest{path: "query_range", params: vals("query", "sum(", "start", ts0, "end", ts30, "step", "15")},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "query": 1:5: parse error: unclosed left parenthesis`),
		},
		{
			name:       "bad time",
			req:        apiRequest{path: "query", params: vals("query", "up", "time", "noon")},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "time": invalid time value for 'time': cannot parse "noon" to a valid timestamp`),
		},
		{
			name:       "bad timeout",
			req:        apiRequest{path: "query", params: vals("query", "up", "time", ts30, "timeout", "forever")},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "timeout": cannot parse "forever" to a valid duration`),
		},
		{
			name:       "missing start",
			req:        apiRequest{path: "query_range", params: vals("query", "up", "end", ts30, "step", "15")},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "start": cannot parse "" to a valid timestamp`),
		},
		{
			name:       "bad start",
			req:        apiRequest{path: "query_range", params: vals("query", "up", "start", "x", "end", ts30, "step", "15")},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "start": cannot parse "x" to a valid timestamp`),
		},
		{
			name:       "missing end",
			req:        apiRequest{path: "query_range", params: vals("query", "up", "start", ts0, "step", "15")},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "end": cannot parse "" to a valid timestamp`),
		},
		{
			name:       "bad end",
			req:        apiRequest{method: http.MethodPost, path: "query_range", params: vals("query", "up", "start", ts0, "end", "y", "step", "15")},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "end": cannot parse "y" to a valid timestamp`),
		},
		{
			name:       "end before start",
			req:        apiRequest{path: "query_range", params: vals("query", "up", "start", ts30, "end", ts0, "step", "15")},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "end": end timestamp must not be before start time`),
		},
		{
			name:       "missing step",
			req:        apiRequest{path: "query_range", params: vals("query", "up", "start", ts0, "end", ts30)},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "step": cannot parse "" to a valid duration`),
		},
		{
			name:       "step zero",
			req:        apiRequest{path: "query_range", params: vals("query", "up", "start", ts0, "end", ts30, "step", "0")},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer`),
		},
		{
			name:       "step negative seconds",
			req:        apiRequest{path: "query_range", params: vals("query", "up", "start", ts0, "end", ts30, "step", "-15")},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer`),
		},
		{
			name:       "step negative duration",
			req:        apiRequest{path: "query_range", params: vals("query", "up", "start", ts0, "end", ts30, "step", "-15s")},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `invalid parameter "step": cannot parse "-15s" to a valid duration`),
		},
		{
			name:       "too many points",
			req:        apiRequest{path: "query_range", params: vals("query", "up", "start", "0", "end", "11001", "step", "1")},
			wantStatus: http.StatusBadRequest,
			wantBody:   errorBody("bad_data", `exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)`),
		},
		{
			name:       "execution error",
			req:        apiRequest{path: "query", params: vals("query", `label_replace(up, "x", "y", "job", "(.*)") / on() up`, "time", ts30)},
			wantStatus: http.StatusUnprocessableEntity,
			wantBody:   errorBody("execution", `found duplicate series for the match group {} on the right hand-side of the operation: [{__name__="up", job="a"}, {__name__="up", job="b"}];many-to-many matching not allowed: matching labels must be unique on one side`),
		},
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			if tc.req.method != "" && tc.req.method != method {
				continue
			}
			t.Run(tc.name+"/"+method, func(t *testing.T) {
				req := tc.req
				req.method = method
				status, body := req.do(t, srv)
				require.JSONEq(t, tc.wantBody, body)
				require.Equal(t, tc.wantStatus, status)
			})
		}
	}
}

func TestAPIMissingTimeIsNow(t *testing.T) {
	// Without "time" an instant query is evaluated now, as in Prometheus:
	// the scalar's timestamp is between the request's start and end.
	_, srv := newTestServer(t, testConfig())
	before := time.Now()
	status, body := apiRequest{method: http.MethodGet, path: "query", params: vals("query", "time()")}.do(t, srv)
	after := time.Now()
	require.Equal(t, http.StatusOK, status, body)

	var resp struct {
		Status string
		Data   struct {
			ResultType string
			Result     [2]any
		}
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	require.Equal(t, "success", resp.Status)
	require.Equal(t, "scalar", resp.Data.ResultType)
	ts := resp.Data.Result[0].(float64)
	require.GreaterOrEqual(t, ts, float64(before.UnixMilli())/1000)
	require.LessOrEqual(t, ts, float64(after.UnixMilli())/1000)
}

func TestAPIMaxSamples(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSamples = 1
	_, srv := newTestServer(t, cfg)

	for _, req := range []apiRequest{
		{method: http.MethodGet, path: "query", params: vals("query", "up", "time", "1700000030")},
		{method: http.MethodPost, path: "query_range", params: vals("query", `up{job="a"}`, "start", "1700000000", "end", "1700000030", "step", "15")},
	} {
		t.Run(req.path, func(t *testing.T) {
			status, body := req.do(t, srv)
			require.JSONEq(t, errorBody("execution", "query processing would load too many samples into memory in query execution"), body)
			require.Equal(t, http.StatusUnprocessableEntity, status)
		})
	}
}

func TestAPIRoutes(t *testing.T) {
	_, srv := newTestServer(t, testConfig())
	for _, tc := range []struct {
		method, path string
		wantStatus   int
	}{
		{http.MethodGet, "/prometheus/api/v1/query?query=1&time=1", http.StatusOK},
		{http.MethodPost, "/prometheus/api/v1/query?query=1&time=1", http.StatusOK},
		{http.MethodGet, "/prometheus/api/v1/query_range?query=1&start=1&end=2&step=1", http.StatusOK},
		{http.MethodPut, "/prometheus/api/v1/query?query=1&time=1", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/v1/query?query=1&time=1", http.StatusNotFound},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(""))
			require.NoError(t, err)
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, tc.wantStatus, resp.StatusCode)
		})
	}
}
