package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/app"
)

// readAPIFixture pushes, for tenant "r", cpu{cpu, mode} × 4 and mem, each
// with samples at base, base+15s, base+30s; and one series for tenant "other".
func readAPIFixture(t *testing.T) (*app.App, time.Time) {
	a := startApp(t, testConfig(t))
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	req := &prompb.WriteRequest{}
	add := func(name string, lbls map[string]string, v float64) {
		var samples []prompb.Sample
		for i := 0; i < 3; i++ {
			samples = append(samples, prompb.Sample{Timestamp: base.Add(time.Duration(i) * 15 * time.Second).UnixMilli(), Value: v + float64(i)})
		}
		req.Timeseries = append(req.Timeseries, series(name, lbls, samples...))
	}
	for _, cpu := range []string{"0", "1"} {
		for _, mode := range []string{"idle", "user"} {
			add("cpu", map[string]string{"cpu": cpu, "mode": mode}, 10)
		}
	}
	// Exemplars on cpu{cpu="0",mode="user"}.
	req.Timeseries[1].Exemplars = []prompb.Exemplar{
		{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 10, Timestamp: base.UnixMilli()},
		{Labels: []prompb.Label{{Name: "trace_id", Value: "def"}}, Value: 11, Timestamp: base.Add(15 * time.Second).UnixMilli()},
	}
	add("mem", map[string]string{"kind": "rss"}, 100)
	req.Metadata = []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "cpu", Help: "CPU time.", Unit: "seconds"},
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "mem", Help: "Memory in use."},
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "mem", Help: "Memory in use, renamed."},
	}
	require.NoError(t, pushClient(a, "r").Push(context.Background(), req))
	require.NoError(t, pushClient(a, "other").Push(context.Background(), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("secret", map[string]string{"owner": "other"}, prompb.Sample{Timestamp: base.UnixMilli(), Value: 1}),
	}}))
	return a, base
}

func getRaw(t *testing.T, a *app.App, tenant, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+a.Server.HTTPAddr()+path, nil)
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := testHTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestReadAPI checks the metadata endpoints answer exactly what Prometheus
// would for the same data, under both path prefixes, for one tenant only.
func TestReadAPI(t *testing.T) {
	a, base := readAPIFixture(t)
	sec := func(d time.Duration) string { return fmt.Sprint(base.Add(d).Unix()) }
	allCPU := `[{"__name__":"cpu","cpu":"0","mode":"idle"},{"__name__":"cpu","cpu":"0","mode":"user"},{"__name__":"cpu","cpu":"1","mode":"idle"},{"__name__":"cpu","cpu":"1","mode":"user"}]`
	tests := []struct {
		name, path, tenant, want string
		status                   int
	}{
		{name: "labels", path: "/api/v1/labels", want: `["__name__","cpu","kind","mode"]`},
		{name: "labels with match", path: "/api/v1/labels?match[]=mem", want: `["__name__","kind"]`},
		{name: "labels with limit", path: "/api/v1/labels?limit=2", want: `["__name__","cpu"],"warnings":["results truncated due to limit"]`},
		{name: "label values", path: "/api/v1/label/__name__/values", want: `["cpu","mem"]`},
		{name: "label values with match", path: "/api/v1/label/mode/values?match[]=" + url.QueryEscape(`cpu{cpu="1"}`), want: `["idle","user"]`},
		{name: "label values of a missing label", path: "/api/v1/label/nope/values", want: `[]`},
		{name: "series", path: "/api/v1/series?match[]=cpu", want: allCPU},
		{name: "series with two matchers", path: "/api/v1/series?match[]=mem&match[]=" + url.QueryEscape(`cpu{mode="idle",cpu="0"}`),
			want: `[{"__name__":"cpu","cpu":"0","mode":"idle"},{"__name__":"mem","kind":"rss"}]`},
		{name: "series in range", path: "/api/v1/series?match[]=mem&start=" + sec(0) + "&end=" + sec(time.Minute), want: `[{"__name__":"mem","kind":"rss"}]`},
		{name: "series before the data", path: "/api/v1/series?match[]=mem&start=" + sec(-time.Hour) + "&end=" + sec(-30*time.Minute), want: `[]`},
		{name: "series needs match", path: "/api/v1/series", status: 400},
		{name: "other tenant's labels", path: "/api/v1/label/__name__/values", tenant: "other", want: `["secret"]`},
		{name: "format query", path: "/api/v1/format_query?query=" + url.QueryEscape("sum(rate(x[5m]))by(job)"), want: `"sum by (job) (rate(x[5m]))"`},
		{name: "metadata", path: "/api/v1/metadata", want: `{"cpu":[{"type":"counter","help":"CPU time.","unit":"seconds"}],` +
			`"mem":[{"type":"gauge","help":"Memory in use, renamed.","unit":""},{"type":"gauge","help":"Memory in use.","unit":""}]}`},
		{name: "metadata of one metric", path: "/api/v1/metadata?metric=cpu", want: `{"cpu":[{"type":"counter","help":"CPU time.","unit":"seconds"}]}`},
		{name: "metadata, one per metric", path: "/api/v1/metadata?metric=mem&limit_per_metric=1", want: `{"mem":[{"type":"gauge","help":"Memory in use, renamed.","unit":""}]}`},
		{name: "metadata of another tenant", path: "/api/v1/metadata", tenant: "other", want: `{}`},
		{name: "metadata with a bad limit", path: "/api/v1/metadata?limit=x", status: 400},
		{name: "exemplars", path: "/api/v1/query_exemplars?query=" + url.QueryEscape(`cpu{mode="user"}`) + "&start=" + sec(0) + "&end=" + sec(time.Minute),
			want: `[{"seriesLabels":{"__name__":"cpu","cpu":"0","mode":"user"},"exemplars":[` +
				`{"labels":{"trace_id":"abc"},"value":"10","timestamp":` + sec(0) + `},` +
				`{"labels":{"trace_id":"def"},"value":"11","timestamp":` + sec(15*time.Second) + `}]}]`},
		{name: "exemplars outside the range", path: "/api/v1/query_exemplars?query=cpu&start=" + sec(-time.Hour) + "&end=" + sec(-time.Minute), want: `[]`},
	}
	for _, prefix := range []string{"/prometheus", "/api/prom"} {
		for _, tc := range tests {
			t.Run(prefix+" "+tc.name, func(t *testing.T) {
				tenant := tc.tenant
				if tenant == "" {
					tenant = "r"
				}
				status, body := getRaw(t, a, tenant, prefix+tc.path)
				if tc.status != 0 {
					require.Equal(t, tc.status, status, body)
					require.Contains(t, body, `"errorType":"bad_data"`)
					return
				}
				require.Equal(t, 200, status, body)
				require.JSONEq(t, `{"status":"success","data":`+tc.want+`}`, body)
			})
		}
	}

	status, body := getRaw(t, a, "r", "/prometheus/api/v1/status/buildinfo")
	require.Equal(t, 200, status)
	require.Contains(t, body, `"version":"dev"`)

	status, _ = getRaw(t, a, "r", "/prometheus/api/v1/parse_query?query=up")
	require.Equal(t, 200, status)

	// Bad PromQL and an execution error use Prometheus's error envelope.
	status, body = getRaw(t, a, "r", "/prometheus/api/v1/query?query="+url.QueryEscape("sum(("))
	require.Equal(t, 400, status)
	require.Contains(t, body, `"errorType":"bad_data"`)
	status, body = getRaw(t, a, "r", "/prometheus/api/v1/query?time="+sec(30*time.Second)+"&query="+url.QueryEscape(`cpu + on(cpu) group_left cpu`))
	require.Equal(t, 422, status, body)
	require.Contains(t, body, `"errorType":"execution"`)

	// stats=all as in Prometheus.
	status, body = getRaw(t, a, "r", "/prometheus/api/v1/query?stats=all&time="+sec(30*time.Second)+"&query=mem")
	require.Equal(t, 200, status)
	require.Contains(t, body, `"stats":{"timings":`)
	require.Contains(t, body, `"totalQueryableSamples":1`)
}

// TestRemoteRead reads through Prometheus's own remote-read client, with
// both response types.
func TestRemoteRead(t *testing.T) {
	a, base := readAPIFixture(t)
	for _, tc := range []struct {
		name string
		typ  prompb.ReadRequest_ResponseType
		path string
	}{
		{"samples", prompb.ReadRequest_SAMPLES, "/prometheus/api/v1/read"},
		{"streamed chunks", prompb.ReadRequest_STREAMED_XOR_CHUNKS, "/prometheus/api/v1/read"},
		{"legacy path", prompb.ReadRequest_STREAMED_XOR_CHUNKS, "/api/prom/api/v1/read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse("http://" + a.Server.HTTPAddr() + tc.path)
			require.NoError(t, err)
			c, err := remote.NewReadClient("neocortex", &remote.ClientConfig{
				URL:                   &config_util.URL{URL: u},
				Timeout:               model.Duration(10 * time.Second),
				Headers:               map[string]string{"X-Scope-OrgID": "r"},
				ChunkedReadLimit:      1 << 20,
				AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{tc.typ},
			})
			require.NoError(t, err)
			q, err := remote.ToQuery(base.UnixMilli(), base.Add(time.Minute).UnixMilli(),
				[]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "cpu"), labels.MustNewMatcher(labels.MatchEqual, "mode", "user")}, nil)
			require.NoError(t, err)
			ss, err := c.Read(context.Background(), q, true)
			require.NoError(t, err)
			got := map[string][]float64{}
			for ss.Next() {
				s := ss.At()
				it := s.Iterator(nil)
				for it.Next() == chunkenc.ValFloat {
					_, v := it.At()
					got[s.Labels().String()] = append(got[s.Labels().String()], v)
				}
				require.NoError(t, it.Err())
			}
			require.NoError(t, ss.Err())
			require.Equal(t, map[string][]float64{
				`{__name__="cpu", cpu="0", mode="user"}`: {10, 11, 12},
				`{__name__="cpu", cpu="1", mode="user"}`: {10, 11, 12},
			}, got)
		})
	}
}

var _ storage.SeriesSet = storage.EmptySeriesSet()
