package distributor

import (
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestEncodeRequest builds one ingester's request from series that arrived
// encoded, series changed by validation, and metadata, and decodes it back.
func TestEncodeRequest(t *testing.T) {
	mk := func(name string, v float64) prompb.TimeSeries {
		return prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}}, Samples: []prompb.Sample{{Timestamp: 1, Value: v}}}
	}
	series := []prompb.TimeSeries{mk("a", 1), mk("b", 2), mk("c", 3)}
	raw := make([][]byte, len(series))
	var err error
	raw[0], err = series[0].Marshal()
	require.NoError(t, err)
	// A raw encoding wins over the decoded series: it is what arrived.
	received := mk("c-as-received", 30)
	raw[2], err = received.Marshal()
	require.NoError(t, err)
	metadata := []prompb.MetricMetadata{{MetricFamilyName: "a", Type: prompb.MetricMetadata_COUNTER, Help: "A."}}

	for _, tc := range []struct {
		name  string
		idx   []int
		noRaw bool // no series arrived encoded (Distributor.Push)
		want  prompb.WriteRequest
	}{
		{"raw series", []int{0}, false, prompb.WriteRequest{Timeseries: []prompb.TimeSeries{mk("a", 1)}}},
		{"encoded again", []int{1}, false, prompb.WriteRequest{Timeseries: []prompb.TimeSeries{mk("b", 2)}}},
		{"mixed with metadata", []int{0, 1, 2, 3}, false, prompb.WriteRequest{
			Timeseries: []prompb.TimeSeries{mk("a", 1), mk("b", 2), mk("c-as-received", 30)},
			Metadata:   metadata,
		}},
		{"metadata only", []int{3}, false, prompb.WriteRequest{Metadata: metadata}},
		{"nothing encoded", []int{0, 2}, true, prompb.WriteRequest{Timeseries: []prompb.TimeSeries{mk("a", 1), mk("c", 3)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := raw
			if tc.noRaw {
				r = nil
			}
			// Into a recycled buffer, whose old bytes must not show.
			buf, err := encodeRequest([]byte("stale bytes"), series, r, metadata, tc.idx)
			require.NoError(t, err)
			var got prompb.WriteRequest
			require.NoError(t, got.Unmarshal(buf))
			require.Equal(t, tc.want, got)
		})
	}
}
