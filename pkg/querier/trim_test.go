package querier

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// TestTrimmedIterator reads a series of samples at 10, 20, … 100 through
// trimmedSeries with several ranges, by Next and by Seek, reusing one
// iterator throughout, and requires exactly the samples in range.
func TestTrimmedIterator(t *testing.T) {
	chk := chunkenc.NewXORChunk()
	app, err := chk.Appender()
	require.NoError(t, err)
	for ts := int64(10); ts <= 100; ts += 10 {
		app.Append(0, ts, float64(ts)/10)
	}
	series := &storage.SeriesEntry{
		Lset:             labels.FromStrings("__name__", "m"),
		SampleIteratorFn: func(it chunkenc.Iterator) chunkenc.Iterator { return chk.Iterator(it) },
	}
	for _, tc := range []struct {
		name       string
		mint, maxt int64
		seek       int64 // 0: read with Next only
		want       []int64
	}{
		{"all", 0, 1000, 0, []int64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}},
		{"inner, bounds included", 30, 60, 0, []int64{30, 40, 50, 60}},
		{"inner, bounds between samples", 25, 65, 0, []int64{30, 40, 50, 60}},
		{"before every sample", 0, 5, 0, nil},
		{"after every sample", 101, 200, 0, nil},
		{"seek before mint", 30, 60, 5, []int64{30, 40, 50, 60}},
		{"seek inside", 30, 60, 45, []int64{50, 60}},
		{"seek to maxt", 30, 60, 60, []int64{60}},
		{"seek past maxt", 30, 60, 61, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var it chunkenc.Iterator
			for range 2 { // the second time through a reused iterator
				it = trimmedSeries{Series: series, mint: tc.mint, maxt: tc.maxt}.Iterator(it)
				var got []int64
				vt := chunkenc.ValNone
				if tc.seek != 0 {
					vt = it.Seek(tc.seek)
				} else {
					vt = it.Next()
				}
				for ; vt != chunkenc.ValNone; vt = it.Next() {
					ts, v := it.At()
					require.Equal(t, float64(ts)/10, v)
					got = append(got, ts)
				}
				require.NoError(t, it.Err())
				require.Equal(t, tc.want, got)
				require.Equal(t, chunkenc.ValNone, it.Next(), "done stays done")
				require.Equal(t, chunkenc.ValNone, it.Seek(tc.mint), "done stays done")
			}
		})
	}
}
