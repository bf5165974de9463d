package main

import (
	"log/slog"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
)

// TestV2Encoder encodes the steps of one request in 2.0, decodes them with
// the generated code and requires the series, samples and metadata that
// the generator defines, with a symbols table holding each string once.
// The request's series are replaced by churn along the way, and the last
// step is cut short by a sample limit.
func TestV2Encoder(t *testing.T) {
	const (
		active     = 64
		perRequest = 40 // request 0 is slots [0,40): every metric name, counters and gauges
		intervalMs = int64(30000)
		startMs    = int64(1_700_000_000_000)
	)
	// 32 replacements a minute: step k replaces slots [16(k-1), 16k) mod 64.
	gen := NewGenerator(9, active, 12, 32, intervalMs)
	plan := NewPlan([]string{"t"}, active, perRequest)
	s := NewSender(SenderConfig{URL: "http://localhost:1", Concurrency: 1, RemoteWriteVersion: remoteWrite2},
		SenderDeps{Gen: gen, Plan: plan, Stats: NewStats(0, nil), Acks: &AckLog{}, Logger: slog.New(slog.DiscardHandler)})
	defer s.Close()
	sh := &shard{s: s, cache: map[int]*requestCache{}}
	require.Equal(t, []int64{0, 1, 1, 0}, []int64{gen.Generation(15, 0), gen.Generation(15, 1), gen.Generation(31, 2), gen.Generation(32, 2)}, "churn as the cases say")

	for _, tc := range []struct {
		name string
		step int64
		n    int
	}{
		{name: "first step", step: 0, n: perRequest},
		{name: "churn replaced slots 0-15", step: 1, n: perRequest},
		{name: "churn replaced slots 16-31", step: 2, n: perRequest},
		{name: "churn replaced slots 32-47", step: 3, n: perRequest},
		{name: "churn replaced slots outside the request", step: 4, n: perRequest},
		{name: "cut by a sample limit", step: 5, n: 7},
		{name: "whole again", step: 6, n: perRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := job{step: tc.step, tsMs: startMs + tc.step*intervalMs, req: 0, n: tc.n}
			wr := sh.build(j)
			body, err := sh.cache[0].v2.encode(gen, sh.cache[0], 0, j.n)
			require.NoError(t, err)
			raw, err := snappy.Decode(nil, body)
			require.NoError(t, err)
			var got writev2.Request
			require.NoError(t, got.Unmarshal(raw))

			require.Equal(t, "", got.Symbols[0], "symbols[0] is the empty string")
			wantSymbols := map[string]bool{"": true}
			require.Len(t, got.Timeseries, tc.n)
			for i, ts := range got.Timeseries {
				slot := i
				g := gen.Generation(slot, tc.step)
				var ls []prompb.Label
				require.Zero(t, len(ts.LabelsRefs)%2)
				for k := 0; k < len(ts.LabelsRefs); k += 2 {
					ls = append(ls, prompb.Label{Name: got.Symbols[ts.LabelsRefs[k]], Value: got.Symbols[ts.LabelsRefs[k+1]]})
				}
				require.Equal(t, gen.Labels(slot, g), ls, "series %d", i)
				for _, l := range ls {
					wantSymbols[l.Name], wantSymbols[l.Value] = true, true
				}
				require.Equal(t, []writev2.Sample{{Value: gen.Value(slot, g, tc.step), Timestamp: j.tsMs}}, ts.Samples, "series %d", i)
				wantType := writev2.Metadata_METRIC_TYPE_GAUGE
				if gen.IsCounter(slot) {
					wantType = writev2.Metadata_METRIC_TYPE_COUNTER
				}
				require.Equal(t, writev2.Metadata{Type: wantType}, ts.Metadata, "series %d", i)
				require.Empty(t, ts.Histograms)
				require.Empty(t, ts.Exemplars)
			}
			// Each string once; the strings of replaced series are gone.
			seen := map[string]bool{}
			for _, sym := range got.Symbols {
				require.False(t, seen[sym], "symbol %q twice", sym)
				seen[sym] = true
			}
			require.Equal(t, wantSymbols, seen)

			// 1.0 sends the same series and samples.
			v1, err := remotewrite.Encode(wr)
			require.NoError(t, err)
			raw, err = snappy.Decode(nil, v1)
			require.NoError(t, err)
			var got1 prompb.WriteRequest
			require.NoError(t, got1.Unmarshal(raw))
			require.Len(t, got1.Timeseries, tc.n)
			for i, ts := range got1.Timeseries {
				g := gen.Generation(i, tc.step)
				require.Equal(t, gen.Labels(i, g), ts.Labels, "series %d", i)
				require.Equal(t, []prompb.Sample{{Value: gen.Value(i, g, tc.step), Timestamp: j.tsMs}}, ts.Samples, "series %d", i)
			}
		})
	}
	require.Equal(t, "application/x-protobuf;proto=io.prometheus.write.v2.Request", remoteWrite2Headers["Content-Type"])
	require.Equal(t, "snappy", remoteWrite2Headers["Content-Encoding"])
	require.Equal(t, "2.0.0", remoteWrite2Headers["X-Prometheus-Remote-Write-Version"])
}
