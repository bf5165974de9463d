package main

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

func TestGeneratorLabels(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels int
		slots  int
	}{
		{"minimum", 3, 500},
		{"default", 10, 2000},
		{"whole pool", len(labelPool) + 1, 200},
		{"beyond the pool", len(labelPool) + 6, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGenerator(7, tc.slots, tc.labels, 0, 15000)
			again := NewGenerator(7, tc.slots, tc.labels, 0, 15000)
			other := NewGenerator(8, tc.slots, tc.labels, 0, 15000)
			seen := map[string]bool{}
			for slot := range tc.slots {
				for gen := range int64(3) {
					ls := g.Labels(slot, gen)
					require.Len(t, ls, tc.labels)
					require.Equal(t, ls, again.Labels(slot, gen), "same seed, same labels")
					require.NotEqual(t, ls, other.Labels(slot, gen), "another seed, another series")
					require.True(t, hasLabel(ls, "__name__", g.MetricName(slot)))
					for i := 1; i < len(ls); i++ {
						require.Less(t, ls[i-1].Name, ls[i].Name, "sorted, no duplicates")
					}
					for _, l := range ls {
						require.NotEmpty(t, l.Value, l.Name)
					}
					key := seriesKey(ls) + g.MetricName(slot)
					require.False(t, seen[key], "series %v made twice", ls)
					seen[key] = true
				}
			}
		})
	}
}

func hasLabel(ls []prompb.Label, name, value string) bool {
	for _, l := range ls {
		if l.Name == name && l.Value == value {
			return true
		}
	}
	return false
}

func TestGeneratorValue(t *testing.T) {
	g := NewGenerator(3, 100, 10, 0, 15000)
	for slot := range 100 {
		counter := metricNames[slot%len(metricNames)].counter
		prev := math.Inf(-1)
		for step := range int64(50) {
			v := g.Value(slot, 0, step)
			require.Equal(t, v, NewGenerator(3, 100, 10, 0, 15000).Value(slot, 0, step), "recomputable")
			require.Equal(t, math.Trunc(v*4), v*4, "a multiple of 1/4, exact in JSON")
			if counter {
				require.Greater(t, v, prev, "counters grow")
			}
			prev = v
		}
		require.NotEqual(t, g.Value(slot, 0, 5), g.Value(slot, 1, 5), "a new generation is a new series")
	}
}

func TestGeneratorGeneration(t *testing.T) {
	for _, tc := range []struct {
		name       string
		active     int
		churn      int
		intervalMs int64
		churnFrom  int64 // the backfill's steps
		slot       int
		step       int64
		want       int64
	}{
		{"no churn", 10, 0, 15000, 0, 3, 1000, 0},
		{"before the first replacement", 10, 60, 1000, 0, 0, 0, 0},
		{"one per second, step 1 replaces slot 0", 10, 60, 1000, 0, 0, 1, 1},
		{"one per second, slot 1 not yet", 10, 60, 1000, 0, 1, 1, 0},
		{"one per second, wraps around", 10, 60, 1000, 0, 0, 11, 2},
		{"four per 15s step, slot 3 in the first four", 10, 16, 15000, 0, 3, 1, 1},
		{"four per 15s step, slot 4 waits", 10, 16, 15000, 0, 4, 1, 0},
		{"four per 15s step, slot 4 at step 2", 10, 16, 15000, 0, 4, 2, 1},
		{"backfilled steps keep generation 0", 10, 60, 1000, 40, 0, 39, 0},
		{"the live start keeps generation 0", 10, 60, 1000, 40, 0, 40, 0},
		{"churn starts after the backfill", 10, 60, 1000, 40, 0, 41, 1},
		{"after a backfill, slot 1 not yet", 10, 60, 1000, 40, 1, 41, 0},
		{"after a backfill, wraps around", 10, 60, 1000, 40, 0, 51, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGenerator(1, tc.active, 5, tc.churn, tc.intervalMs).WithChurnFrom(tc.churnFrom)
			require.Equal(t, tc.want, g.Generation(tc.slot, tc.step))
			if tc.want > 0 {
				require.NotEqual(t, g.Labels(tc.slot, tc.want-1), g.Labels(tc.slot, tc.want), "a replaced series has a new label value")
			}
		})
	}
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tenants    []string
		active     int
		perRequest int
		want       []RequestSpec
	}{
		{"one tenant", []string{"a"}, 5, 2, []RequestSpec{{0, 0, 2}, {0, 2, 4}, {0, 4, 5}}},
		{"two tenants", []string{"a", "b"}, 5, 2, []RequestSpec{{0, 0, 2}, {1, 2, 4}, {1, 4, 5}}},
		{"one request each", []string{"a", "b", "c"}, 9, 100, []RequestSpec{{0, 0, 3}, {1, 3, 6}, {2, 6, 9}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPlan(tc.tenants, tc.active, tc.perRequest)
			require.Equal(t, tc.want, p.Requests)
			for r, spec := range p.Requests {
				for slot := spec.Lo; slot < spec.Hi; slot++ {
					require.Equal(t, r, p.RequestOf(slot))
				}
			}
		})
	}
}
