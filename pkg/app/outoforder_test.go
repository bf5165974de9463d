package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestOutOfOrderRangeQuery writes a series in order over two chunks, then
// out-of-order samples between them, and reads every sample back through
// range queries over the whole span and over parts of it: the in-process
// ingester's chunks then overlap in time, and every sample must come back
// once, in order.
func TestOutOfOrderRangeQuery(t *testing.T) {
	cfg := testConfig(t)
	cfg.Limits.OutOfOrderTimeWindow = time.Hour
	a := startApp(t, cfg)
	rw := pushClient(a, "t")
	ctx := context.Background()

	base := time.Now().Add(-40 * time.Minute).Truncate(time.Minute)
	const step = 5 * time.Second
	var inOrder, outOfOrder []prompb.Sample
	for i := 0; i <= 240; i += 2 { // every 10s for 20 minutes: 121 samples, two chunks
		inOrder = append(inOrder, prompb.Sample{Timestamp: base.Add(time.Duration(i) * step).UnixMilli(), Value: float64(i)})
	}
	for i := 61; i <= 181; i += 2 { // the 5s between them, from minute 5 to 15
		outOfOrder = append(outOfOrder, prompb.Sample{Timestamp: base.Add(time.Duration(i) * step).UnixMilli(), Value: float64(i)})
	}
	for _, s := range [][]prompb.Sample{inOrder, outOfOrder} {
		require.NoError(t, rw.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("m", map[string]string{"job": "ooo"}, s...)}}))
	}

	// want is what a range query at 5s steps gives: the newest sample at or
	// before each step (all within the lookback).
	want := func(from, to int) [][2]float64 {
		var out [][2]float64
		for i := from; i <= to; i++ {
			v := i
			if i%2 == 1 && (i < 61 || i > 181) {
				v = i - 1
			}
			out = append(out, [2]float64{float64(base.Add(time.Duration(i) * step).UnixMilli()), float64(v)})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		from, to int // in steps after base
	}{
		{"whole span", 0, 240},
		{"the out-of-order part", 61, 181},
		{"across its start", 50, 70},
		{"across its end", 170, 200},
		{"inside the second chunk", 200, 230},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, status := queryRange(t, a, "t", `m{job="ooo"}`, base.Add(time.Duration(tc.from)*step), base.Add(time.Duration(tc.to)*step), step)
			require.Equal(t, 200, status)
			require.Equal(t, map[string][][2]float64{`{__name__="m",job="ooo"}`: want(tc.from, tc.to)}, got)
		})
	}
}
