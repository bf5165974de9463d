package app_test

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/app"
)

// pushV2 sends req as remote write 2.0 and returns the status, body and the
// three "written" response headers (samples, histograms, exemplars).
func pushV2(t *testing.T, a *app.App, tenant string, req *writev2.Request) (int, string, [3]string) {
	t.Helper()
	pb, err := req.Marshal()
	require.NoError(t, err)
	hr, err := http.NewRequest(http.MethodPost, "http://"+a.Server.HTTPAddr()+"/api/v1/push", bytes.NewReader(snappy.Encode(nil, pb)))
	require.NoError(t, err)
	hr.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	hr.Header.Set("X-Scope-OrgID", tenant)
	resp, err := testHTTP.Do(hr)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body bytes.Buffer
	_, err = body.ReadFrom(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body.String(), [3]string{
		resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"),
		resp.Header.Get("X-Prometheus-Remote-Write-Histograms-Written"),
		resp.Header.Get("X-Prometheus-Remote-Write-Exemplars-Written"),
	}
}

// TestRemoteWrite2 writes floats, a native histogram, an exemplar and
// metadata with remote write 2.0 and reads them back through the query
// API; a request with one invalid series stores the rest and says so in
// its 400 and its "written" headers.
func TestRemoteWrite2(t *testing.T) {
	a := startApp(t, testConfig(t))
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	ms := t0.UnixMilli()

	st := writev2.NewSymbolTable()
	ref := func(ls ...string) []uint32 { return st.SymbolizeLabels(labels.FromStrings(ls...), nil) }
	h := &histogram.Histogram{Count: 3, Sum: 1.5, Schema: 0, PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 1}}
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{
		{
			LabelsRefs: ref("__name__", "rw2_requests_total", "job", "api"),
			Samples:    []writev2.Sample{{Timestamp: ms, Value: 1}, {Timestamp: ms + 15000, Value: 2}},
			Exemplars:  []writev2.Exemplar{{LabelsRefs: ref("trace_id", "abc"), Value: 1, Timestamp: ms}},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Requests served.")},
		},
		{
			LabelsRefs: ref("__name__", "rw2_latency_seconds", "job", "api"),
			Histograms: []writev2.Histogram{writev2.FromIntHistogram(0, ms, h)},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM},
		},
	}}
	req.Symbols = st.Symbols()
	status, body, written := pushV2(t, a, "rw2", req)
	require.Equal(t, http.StatusNoContent, status, body)
	require.Equal(t, [3]string{"2", "1", "1"}, written)

	got, status := queryRange(t, a, "rw2", "rw2_requests_total", t0, t0.Add(15*time.Second), 15*time.Second)
	require.Equal(t, 200, status)
	require.Equal(t, map[string][][2]float64{
		`{__name__="rw2_requests_total",job="api"}`: {{float64(ms), 1}, {float64(ms + 15000), 2}},
	}, got)
	vec, status := queryInstant(t, a, "rw2", "histogram_count(rw2_latency_seconds)", t0)
	require.Equal(t, 200, status)
	require.Equal(t, map[string]float64{`{job="api"}`: 3}, vec)

	sec := func(d time.Duration) string {
		return strconv.FormatFloat(float64(t0.Add(d).UnixMilli())/1000, 'f', 3, 64)
	}
	for _, tc := range []struct{ path, want string }{
		{"/prometheus/api/v1/metadata", `{"rw2_requests_total":[{"type":"counter","help":"Requests served.","unit":""}],"rw2_latency_seconds":[{"type":"histogram","help":"","unit":""}]}`},
		{"/prometheus/api/v1/query_exemplars?query=rw2_requests_total&start=" + sec(-time.Minute) + "&end=" + sec(time.Minute),
			`[{"seriesLabels":{"__name__":"rw2_requests_total","job":"api"},"exemplars":[{"labels":{"trace_id":"abc"},"value":"1","timestamp":` + strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) + `}]}]`},
	} {
		status, body := getRaw(t, a, "rw2", tc.path)
		require.Equal(t, 200, status, body)
		require.JSONEq(t, `{"status":"success","data":`+tc.want+`}`, body, tc.path)
	}

	// One valid series and one with an invalid label name: the valid one
	// is stored, and the headers count only it.
	st.Reset()
	req = &writev2.Request{Timeseries: []writev2.TimeSeries{
		{LabelsRefs: ref("__name__", "rw2_partial", "job", "api"), Samples: []writev2.Sample{{Timestamp: ms, Value: 7}}},
		{LabelsRefs: ref("__name__", "rw2_partial", "bad-name", "x"), Samples: []writev2.Sample{{Timestamp: ms, Value: 8}}},
	}}
	req.Symbols = st.Symbols()
	status, body, written = pushV2(t, a, "rw2", req)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, `bad-name`)
	require.Equal(t, [3]string{"1", "0", "0"}, written)
	vec, status = queryInstant(t, a, "rw2", "rw2_partial", t0)
	require.Equal(t, 200, status)
	require.Equal(t, map[string]float64{`{__name__="rw2_partial",job="api"}`: 7}, vec)

	// A symbol reference outside the table is a 400 that says so.
	status, body, _ = pushV2(t, a, "rw2", &writev2.Request{Symbols: []string{"", "__name__"}, Timeseries: []writev2.TimeSeries{
		{LabelsRefs: []uint32{1, 9}, Samples: []writev2.Sample{{Timestamp: ms, Value: 1}}},
	}})
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, "symbol reference outside the symbols table")
}
