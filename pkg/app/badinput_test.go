package app_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
)

// TestBadInput sends each kind of bad request and checks the status, that
// the message names the problem, what was counted as discarded, and that
// only the valid series of a request were stored.
func TestBadInput(t *testing.T) {
	cfg := testConfig(t)
	cfg.Distributor.MaxRecvMsgSize = 4096
	overrides := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(overrides, []byte(`
overrides:
  slow:
    ingestion_rate: 10
    ingestion_burst_size: 20
  small:
    max_series_per_user: 2
  narrow:
    max_series_per_metric: 1
`), 0o644))
	cfg.RuntimeConfig.LoadPath = []string{overrides}
	cfg.RuntimeConfig.ReloadPeriod = 50 * time.Millisecond
	a := startApp(t, cfg)

	now := time.Now().Truncate(time.Millisecond)
	ts := now.UnixMilli()
	sample := func(v float64) prompb.Sample { return prompb.Sample{Timestamp: ts, Value: v} }
	withLabels := func(ls ...string) prompb.TimeSeries {
		s := prompb.TimeSeries{Samples: []prompb.Sample{sample(1)}}
		for i := 0; i < len(ls); i += 2 {
			s.Labels = append(s.Labels, prompb.Label{Name: ls[i], Value: ls[i+1]})
		}
		return s
	}
	valid := series("good", map[string]string{"a": "1"}, sample(7))
	encode := func(ss ...prompb.TimeSeries) []byte {
		b, err := remotewrite.Encode(&prompb.WriteRequest{Timeseries: ss})
		require.NoError(t, err)
		return b
	}
	manyLabels := []string{"__name__", "m"}
	for i := 0; i < 30; i++ {
		manyLabels = append(manyLabels, "l"+string(rune('a'+i/10))+string(rune('a'+i%10)), "v")
	}
	rawProto, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{valid}}).Marshal()
	require.NoError(t, err)

	tests := []struct {
		name       string
		tenant     string
		body       []byte
		headers    map[string]string
		wantStatus int
		wantMsg    []string
		// discarded is the increase of neocortex_discarded_samples_total for
		// (reason, tenant) the request must cause.
		discarded map[[2]string]float64
		// stored are the metric names the tenant must have afterwards.
		stored []string
	}{
		{
			name: "garbage body", tenant: "garbage", body: snappy.Encode(nil, []byte("\xff\xff\xff not a protobuf")),
			wantStatus: 400, wantMsg: []string{"not a protobuf remote-write WriteRequest"},
		},
		{
			name: "body not snappy", tenant: "notsnappy", body: rawProto,
			wantStatus: 400, wantMsg: []string{"not snappy"},
		},
		{
			name: "wrong content type", tenant: "ctype", body: encode(valid), headers: map[string]string{"Content-Type": "application/json"},
			wantStatus: 415, wantMsg: []string{`unsupported Content-Type "application/json"`},
		},
		{
			name: "remote write 1.0 body sent as 2.0", tenant: "rw2", body: encode(valid), headers: map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
			wantStatus: 400, wantMsg: []string{"sent as 2.0"},
		},
		{
			name: "unknown protobuf message", tenant: "rw3", body: encode(valid), headers: map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v3.Request"},
			wantStatus: 415, wantMsg: []string{`unsupported protobuf message "io.prometheus.write.v3.Request"`},
		},
		{
			name: "wrong content encoding", tenant: "cenc", body: encode(valid), headers: map[string]string{"Content-Encoding": "gzip"},
			wantStatus: 415, wantMsg: []string{`unsupported Content-Encoding "gzip"`},
		},
		{
			name: "missing tenant", tenant: "", body: encode(valid),
			wantStatus: 401, wantMsg: []string{"X-Scope-OrgID"},
		},
		{
			name: "invalid tenant", tenant: "../etc", body: encode(valid),
			wantStatus: 400, wantMsg: []string{`invalid tenant "../etc"`},
		},
		{
			name: "body over size", tenant: "big", body: encode(func() []prompb.TimeSeries {
				var ss []prompb.TimeSeries
				for i := 0; i < 200; i++ {
					ss = append(ss, withLabels("__name__", "big", "i", strings.Repeat("x", 40)+string(rune('a'+i%26))+string(rune('a'+i/26))))
				}
				return ss
			}()...),
			wantStatus: 413, wantMsg: []string{"larger than the limit of 4096 bytes"},
		},
		{
			name: "unsorted labels", tenant: "unsorted", body: encode(valid, withLabels("__name__", "m", "b", "1", "a", "2")),
			wantStatus: 400, wantMsg: []string{"not sorted", `"a" comes after "b"`, `m{b="1", a="2"}`, "labels_not_sorted"},
			discarded: map[[2]string]float64{{"labels_not_sorted", "unsorted"}: 1}, stored: []string{"good"},
		},
		{
			name: "duplicate labels", tenant: "dup", body: encode(valid, withLabels("__name__", "m", "a", "1", "a", "2")),
			wantStatus: 400, wantMsg: []string{`duplicate label name "a"`},
			discarded: map[[2]string]float64{{"duplicate_label_names", "dup"}: 1}, stored: []string{"good"},
		},
		{
			name: "too many labels", tenant: "many", body: encode(valid, withLabels(manyLabels...)),
			wantStatus: 400, wantMsg: []string{"31 label names, more than the limit of 30"},
			discarded: map[[2]string]float64{{"max_label_names_per_series", "many"}: 1}, stored: []string{"good"},
		},
		{
			name: "label name too long", tenant: "longname", body: encode(valid, withLabels("__name__", "m", strings.Repeat("n", 1025), "v")),
			wantStatus: 400, wantMsg: []string{"label name of 1025 bytes is longer than the limit of 1024 bytes"},
			discarded: map[[2]string]float64{{"label_name_too_long", "longname"}: 1}, stored: []string{"good"},
		},
		{
			name: "label value too long", tenant: "longvalue", body: encode(valid, withLabels("__name__", "m", "a", strings.Repeat("v", 2049))),
			wantStatus: 400, wantMsg: []string{`value of label "a" is 2049 bytes, longer than the limit of 2048 bytes`},
			discarded: map[[2]string]float64{{"label_value_too_long", "longvalue"}: 1}, stored: []string{"good"},
		},
		{
			name: "invalid metric name", tenant: "badname", body: encode(valid, withLabels("__name__", "1bad")),
			wantStatus: 400, wantMsg: []string{`invalid metric name "1bad"`},
			discarded: map[[2]string]float64{{"metric_name_invalid", "badname"}: 1}, stored: []string{"good"},
		},
		{
			name: "missing metric name", tenant: "noname", body: encode(valid, withLabels("a", "1")),
			wantStatus: 400, wantMsg: []string{"no metric name"},
			discarded: map[[2]string]float64{{"missing_metric_name", "noname"}: 1}, stored: []string{"good"},
		},
		{
			name: "future timestamp", tenant: "future", body: encode(valid, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "later"}},
				Samples: []prompb.Sample{{Timestamp: now.Add(11 * time.Minute).UnixMilli(), Value: 1}, {Timestamp: ts, Value: 2}},
			}),
			wantStatus: 400, wantMsg: []string{"more than 10m0s in the future", "later{}", "too_far_in_future"},
			discarded: map[[2]string]float64{{"too_far_in_future", "future"}: 1}, stored: []string{"good", "later"},
		},
		{
			name: "over rate limit", tenant: "slow", body: encode(func() []prompb.TimeSeries {
				var ss []prompb.TimeSeries
				for i := 0; i < 21; i++ {
					ss = append(ss, withLabels("__name__", "fast", "i", string(rune('a'+i))))
				}
				return ss
			}()...),
			wantStatus: 429, wantMsg: []string{"ingestion rate limit of 10 samples/s (burst 20) exceeded by a request of 21 samples"},
			discarded: map[[2]string]float64{{"rate_limited", "slow"}: 21},
		},
		{
			name: "over series limit", tenant: "small", body: encode(
				withLabels("__name__", "s", "i", "1"), withLabels("__name__", "s", "i", "2"), withLabels("__name__", "s", "i", "3")),
			wantStatus: 400, wantMsg: []string{"per-tenant series limit of 2 reached (max_series_per_user)", `s{i="3"}`},
			discarded: map[[2]string]float64{{"per_user_series_limit", "small"}: 1}, stored: []string{"s", "s"},
		},
		{
			name: "over per-metric series limit", tenant: "narrow", body: encode(
				withLabels("__name__", "p", "i", "1"), withLabels("__name__", "p", "i", "2"), withLabels("__name__", "q", "i", "1")),
			wantStatus: 400, wantMsg: []string{`per-metric series limit of 1 reached for metric "p" (max_series_per_metric)`},
			discarded: map[[2]string]float64{{"per_metric_series_limit", "narrow"}: 1}, stored: []string{"p", "q"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := map[[2]string]float64{}
			for k := range tc.discarded {
				before[k] = counterValue(t, a, "neocortex_discarded_samples_total", map[string]string{"reason": k[0], "tenant": k[1]})
			}
			c := pushClient(a, tc.tenant)
			err := c.PushRaw(context.Background(), tc.body, tc.headers)
			var rwErr *remotewrite.Error
			require.True(t, errors.As(err, &rwErr), "want an HTTP error, got %v", err)
			require.Equal(t, tc.wantStatus, rwErr.StatusCode, rwErr.Body)
			for _, m := range tc.wantMsg {
				require.Contains(t, rwErr.Body, m)
			}
			if tc.wantStatus == 429 {
				require.Equal(t, 3*time.Second, rwErr.RetryAfter) // 21 samples at 10/s
			}
			for k, n := range tc.discarded {
				got := counterValue(t, a, "neocortex_discarded_samples_total", map[string]string{"reason": k[0], "tenant": k[1]})
				require.Equal(t, n, got-before[k], "discarded %v", k)
			}
			if tc.tenant == "" || strings.Contains(tc.tenant, "/") {
				return
			}
			got, status := queryInstant(t, a, tc.tenant, `{__name__=~".+"}`, now)
			require.Equal(t, 200, status)
			var names []string
			for k := range got {
				names = append(names, strings.TrimPrefix(strings.SplitN(k, ",", 2)[0], `{__name__="`))
			}
			for i := range names {
				names[i] = strings.TrimSuffix(strings.TrimSuffix(names[i], "}"), `"`)
			}
			require.ElementsMatch(t, tc.stored, names, "%v", got)
		})
	}
}
