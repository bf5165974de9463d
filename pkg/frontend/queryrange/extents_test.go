package queryrange

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestExtentsRoundTrip(t *testing.T) {
	special := &model.SampleStream{Metric: model.Metric{"__name__": "x", "a": "<ünï\x00>"}, Values: []model.SamplePair{
		{Timestamp: -5000, Value: model.SampleValue(math.NaN())},
		{Timestamp: -1, Value: model.SampleValue(math.Inf(1))},
		{Timestamp: 0, Value: model.SampleValue(math.Copysign(0, -1))},
		{Timestamp: 1, Value: model.SampleValue(math.Inf(-1))},
		{Timestamp: 2, Value: 5e-324},
		{Timestamp: 1 << 50, Value: math.MaxFloat64},
	}}
	hist, err := synth(nil).Do(context.Background(), &Request{Start: 0, End: 10 * minute, Step: minute})
	require.NoError(t, err)
	rows := []struct {
		name string
		exts []extent
	}{
		{"none", nil},
		{"empty answer", []extent{{start: 0, end: 100, resp: &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: model.Matrix{}}}}}},
		{"special values", []extent{{start: -5000, end: 1 << 50, resp: &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: model.Matrix{special}}}}}},
		{"histograms, two extents", []extent{{start: 0, end: 10 * minute, resp: hist}, {start: day, end: day, resp: hist}}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			got, err := decodeExtents(must[[]byte](t)(encodeExtents(row.exts)))
			require.NoError(t, err)
			require.Len(t, got, len(row.exts))
			for i, e := range row.exts {
				require.Equal(t, e.start, got[i].start)
				require.Equal(t, e.end, got[i].end)
				// Bytes compare NaN equal to NaN and -0 unequal to 0.
				require.Equal(t, encode(t, e.resp), encode(t, got[i].resp))
				gotM := must[model.Matrix](t)(got[i].resp.Result())
				for j, s := range e.resp.Data.Result {
					for k, p := range s.Values {
						require.Equal(t, math.Float64bits(float64(p.Value)), math.Float64bits(float64(gotM[j].Values[k].Value)))
					}
				}
			}
		})
	}
}

func TestExtentsCorrupt(t *testing.T) {
	resp, err := synth(nil).Do(context.Background(), &Request{Start: 0, End: 10 * minute, Step: minute})
	require.NoError(t, err)
	raw, err := snappy.Decode(nil, must[[]byte](t)(encodeExtents([]extent{{start: 0, end: 10 * minute, resp: resp}})))
	require.NoError(t, err)
	// Every truncation and every flipped byte is an error or another
	// valid value, never a panic nor a huge allocation.
	for i := range raw {
		_, err := decodeExtents(snappy.Encode(nil, raw[:i]))
		require.ErrorIs(t, err, errCorrupt, "truncated at %d", i)
		flipped := append([]byte(nil), raw...)
		flipped[i] ^= 0xff
		_, _ = decodeExtents(snappy.Encode(nil, flipped))
	}
	_, err = decodeExtents([]byte("not snappy"))
	require.ErrorIs(t, err, errCorrupt)
	_, err = decodeExtents(snappy.Encode(nil, append([]byte{extentsFormat}, 0xff, 0xff, 0xff, 0xff, 0x0f)))
	require.ErrorIs(t, err, errCorrupt)
}

// TestExtentsSize measures the cached encoding against JSON on a day of
// real answers (logged); it must be smaller than snappy-compressed JSON.
func TestExtentsSize(t *testing.T) {
	st := tenDays(t)
	h := engineHandler(t, testEngine(), st)
	for _, q := range []string{`rate(http_requests_total[10m])`, `memory_bytes`, `rate(rpc_latency_seconds[10m])`} {
		resp, err := h.Do(context.Background(), &Request{Query: q, Start: 2 * day, End: 3*day - 5*minute, Step: 5 * minute})
		require.NoError(t, err)
		m, err := resp.Result()
		require.NoError(t, err)
		js, err := json.Marshal(&Response{Status: resp.Status, Data: Data{ResultType: resp.Data.ResultType, Result: m}})
		require.NoError(t, err)
		enc := must[[]byte](t)(encodeExtents([]extent{{start: 2 * day, end: 3*day - 5*minute, resp: resp}}))
		jsSnappy := len(snappy.Encode(nil, js))
		t.Logf("%s: %d series: JSON %d bytes, JSON+snappy %d, extents %d", q, len(m), len(js), jsSnappy, len(enc))
		require.Less(t, len(enc), jsSnappy)
	}
}
