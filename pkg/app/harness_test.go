package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/app"
	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
)

// testHTTP does not keep connections alive: tests reuse free ports, and a
// kept-alive connection to a stopped server would fail the next request.
var testHTTP = &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}

// testConfig is the default config on loopback, free ports and a temporary
// data directory, with fast ring heartbeats.
func testConfig(t testing.TB) *app.Config {
	t.Helper()
	cfg, err := app.DefaultConfig()
	require.NoError(t, err)
	cfg.Server.HTTPListenAddress = "127.0.0.1"
	cfg.Server.HTTPListenPort = 0
	cfg.Server.GRPCListenAddress = "127.0.0.1"
	cfg.Server.GRPCListenPort = 0
	cfg.Server.GracefulShutdownTimeout = 5 * time.Second
	dir := t.TempDir()
	name := strings.ReplaceAll(t.Name(), "/", "-")
	cfg.Ingester.DataDir = filepath.Join(dir, "tsdb")
	cfg.Ingester.Ring.HeartbeatPeriod = 200 * time.Millisecond
	cfg.Ingester.Ring.InstanceID = "ingester-" + name
	cfg.Storage.Filesystem.Dir = filepath.Join(dir, "bucket")
	cfg.StoreGateway.DataDir = filepath.Join(dir, "store-gateway")
	cfg.StoreGateway.Ring.HeartbeatPeriod = 200 * time.Millisecond
	cfg.StoreGateway.Ring.InstanceID = "store-gateway-" + name
	cfg.Compactor.DataDir = filepath.Join(dir, "compactor")
	cfg.Compactor.Ring.HeartbeatPeriod = 200 * time.Millisecond
	cfg.Compactor.Ring.InstanceID = "compactor-" + name
	// The single binary shards queries over its CPUs; the tests shard the
	// same on every machine (sums come out the same to the last bit).
	cfg.Frontend.Sharding.TotalShards = 2
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	// NC_DEBUG=1 shows every log line of the processes under test.
	if os.Getenv("NC_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startApp starts a process for cfg and stops it when the test ends.
func startApp(t testing.TB, cfg *app.Config) *app.App {
	t.Helper()
	require.NoError(t, cfg.Validate())
	a, err := app.New(*cfg, testLogger(t))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { s := time.Now(); a.Stop(); t.Logf("stop %v took %s", cfg.Target, time.Since(s)) })
	return a
}

func pushClient(a *app.App, tenant string) *remotewrite.Client {
	return &remotewrite.Client{URL: "http://" + a.Server.HTTPAddr() + "/api/v1/push", Tenant: tenant, HTTP: testHTTP}
}

// series builds a series of samples (t in ms, v) named name with labels.
func series(name string, lbls map[string]string, samples ...prompb.Sample) prompb.TimeSeries {
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	keys := make([]string, 0, len(lbls))
	for k := range lbls {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ls = append(ls, prompb.Label{Name: k, Value: lbls[k]})
	}
	return prompb.TimeSeries{Labels: ls, Samples: samples}
}

type matrixSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
	Value  [2]any            `json:"value"`
}

type queryResponse struct {
	Status    string   `json:"status"`
	ErrorType string   `json:"errorType"`
	Error     string   `json:"error"`
	Warnings  []string `json:"warnings"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// queryRange runs a range query for tenant and returns its matrix, keyed by
// the series' labels, each a list of (ms, value) points.
func queryRange(t *testing.T, a *app.App, tenant, q string, start, end time.Time, step time.Duration) (map[string][][2]float64, int) {
	t.Helper()
	v := url.Values{}
	v.Set("query", q)
	v.Set("start", strconv.FormatFloat(float64(start.UnixMilli())/1000, 'f', 3, 64))
	v.Set("end", strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64))
	v.Set("step", strconv.FormatFloat(step.Seconds(), 'f', 3, 64))
	resp := getQuery(t, a, tenant, "/prometheus/api/v1/query_range?"+v.Encode())
	if resp.status != http.StatusOK {
		return nil, resp.status
	}
	require.Equal(t, "matrix", resp.body.Data.ResultType)
	var ms []matrixSeries
	require.NoError(t, json.Unmarshal(resp.body.Data.Result, &ms))
	out := map[string][][2]float64{}
	for _, s := range ms {
		var pts [][2]float64
		for _, p := range s.Values {
			f, err := strconv.ParseFloat(p[1].(string), 64)
			require.NoError(t, err)
			pts = append(pts, [2]float64{p[0].(float64) * 1000, f})
		}
		out[labelsKey(s.Metric)] = pts
	}
	return out, resp.status
}

// queryInstant runs an instant query and returns the vector keyed by labels.
func queryInstant(t *testing.T, a *app.App, tenant, q string, ts time.Time) (map[string]float64, int) {
	t.Helper()
	v := url.Values{}
	v.Set("query", q)
	v.Set("time", strconv.FormatFloat(float64(ts.UnixMilli())/1000, 'f', 3, 64))
	resp := getQuery(t, a, tenant, "/prometheus/api/v1/query?"+v.Encode())
	if resp.status != http.StatusOK {
		return nil, resp.status
	}
	out := map[string]float64{}
	if resp.body.Data.ResultType == "scalar" {
		var p [2]any
		require.NoError(t, json.Unmarshal(resp.body.Data.Result, &p))
		f, err := strconv.ParseFloat(p[1].(string), 64)
		require.NoError(t, err)
		out[""] = f
		return out, resp.status
	}
	require.Equal(t, "vector", resp.body.Data.ResultType)
	var vs []matrixSeries
	require.NoError(t, json.Unmarshal(resp.body.Data.Result, &vs))
	for _, s := range vs {
		f, err := strconv.ParseFloat(s.Value[1].(string), 64)
		require.NoError(t, err)
		out[labelsKey(s.Metric)] = f
	}
	return out, resp.status
}

type rawResponse struct {
	status int
	body   queryResponse
}

func getQuery(t *testing.T, a *app.App, tenant, path string) rawResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+a.Server.HTTPAddr()+path, nil)
	require.NoError(t, err)
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := testHTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var qr queryResponse
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(b, &qr), string(b))
	} else {
		qr.Error = string(b)
	}
	return rawResponse{status: resp.StatusCode, body: qr}
}

func labelsKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	b.WriteByte('}')
	return b.String()
}

// counterValue returns the value of the counter name with exactly labels
// (0 when the series does not exist).
func counterValue(t *testing.T, a *app.App, name string, lbls map[string]string) float64 {
	t.Helper()
	mfs, err := a.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m.GetLabel(), lbls) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func matchLabels(pairs []*dto.LabelPair, want map[string]string) bool {
	if len(pairs) != len(want) {
		return false
	}
	for _, p := range pairs {
		if want[p.GetName()] != p.GetValue() {
			return false
		}
	}
	return true
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
