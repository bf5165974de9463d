package remotewrite

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

// randomRequest builds a request with every kind of content.
func randomRequest(r *rand.Rand, nSeries int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for i := 0; i < nSeries; i++ {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: fmt.Sprintf("metric_%d", r.IntN(5))}}}
		for l := 0; l < r.IntN(10); l++ {
			ts.Labels = append(ts.Labels, prompb.Label{Name: fmt.Sprintf("l%d", l), Value: fmt.Sprintf("v%d", r.IntN(1000))})
		}
		if r.IntN(4) == 0 {
			ts.Labels = append(ts.Labels, prompb.Label{Name: "empty", Value: ""})
		}
		for s := 0; s < r.IntN(4); s++ {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: r.Int64N(1 << 42), Value: r.NormFloat64()})
		}
		if r.IntN(5) == 0 {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: -5, Value: math.Inf(-1)})
		}
		if r.IntN(6) == 0 {
			ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Labels: []prompb.Label{{Name: "trace_id", Value: "x"}}, Value: 1, Timestamp: 7})
		}
		if r.IntN(6) == 0 {
			h := &histogram.Histogram{Count: 3, Sum: 1.5, Schema: 0, ZeroCount: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 0}}
			ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(9, h))
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	if r.IntN(2) == 0 {
		req.Metadata = append(req.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "metric_0", Help: "h", Unit: "u"})
	}
	return req
}

// TestUnmarshalMatchesGenerated decodes random requests with both decoders
// and requires the same result.
// The same with one Arena reused for all requests, of sizes that make it
// grow while decoding, with the raw encodings checked too.
func TestUnmarshalMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var (
		arena Arena
		raw   [][]byte
	)
	for i := 0; i < 300; i++ {
		want := randomRequest(r, r.IntN(30)+10*(i%7))
		buf, err := want.Marshal()
		require.NoError(t, err)

		var gen prompb.WriteRequest
		require.NoError(t, gen.Unmarshal(buf))
		var got prompb.WriteRequest
		require.NoError(t, Unmarshal(buf, &got))
		normalize(&gen)
		normalize(&got)
		require.Equal(t, gen, got, "request %d", i)

		var reused prompb.WriteRequest
		require.NoError(t, arena.Unmarshal(buf, &reused, &raw))
		require.Len(t, raw, len(reused.Timeseries))
		for j, b := range raw {
			var ts prompb.TimeSeries
			require.NoError(t, ts.Unmarshal(b))
			require.Equal(t, gen.Timeseries[j].Samples, normalizedSamples(ts.Samples), "request %d series %d", i, j)
		}
		normalize(&reused)
		require.Equal(t, gen, reused, "request %d, reused arena", i)
	}
}

// normalizedSamples is samples as normalize leaves them.
func normalizedSamples(s []prompb.Sample) []prompb.Sample {
	if len(s) == 0 {
		return nil
	}
	for j := range s {
		s[j].XXX_unrecognized = nil
	}
	return s
}

// normalize makes nil and empty slices compare equal and drops the unknown
// fields the generated code keeps (ours skips them).
func normalize(req *prompb.WriteRequest) {
	req.XXX_unrecognized = nil
	if len(req.Timeseries) == 0 {
		req.Timeseries = nil
	}
	if len(req.Metadata) == 0 {
		req.Metadata = nil
	}
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		ts.XXX_unrecognized = nil
		for j := range ts.Labels {
			ts.Labels[j].XXX_unrecognized = nil
		}
		for j := range ts.Samples {
			ts.Samples[j].XXX_unrecognized = nil
		}
		if len(ts.Labels) == 0 {
			ts.Labels = nil
		}
		if len(ts.Samples) == 0 {
			ts.Samples = nil
		}
	}
}

func TestUnmarshalSeriesDoNotShareCapacity(t *testing.T) {
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "a"}}, Samples: []prompb.Sample{{Timestamp: 1, Value: 1}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "b"}}, Samples: []prompb.Sample{{Timestamp: 2, Value: 2}}},
	}}
	buf, err := req.Marshal()
	require.NoError(t, err)
	var got prompb.WriteRequest
	require.NoError(t, Unmarshal(buf, &got))
	got.Timeseries[0].Labels = append(got.Timeseries[0].Labels, prompb.Label{Name: "x", Value: "y"})
	got.Timeseries[0].Samples = append(got.Timeseries[0].Samples, prompb.Sample{Timestamp: 3})
	require.Equal(t, "b", got.Timeseries[1].Labels[0].Value)
	require.Equal(t, int64(2), got.Timeseries[1].Samples[0].Timestamp)
}

func TestUnmarshalSkipsUnknownFields(t *testing.T) {
	var label []byte
	label = protowire.AppendTag(label, 1, protowire.BytesType)
	label = protowire.AppendString(label, "__name__")
	label = protowire.AppendTag(label, 9, protowire.VarintType) // unknown
	label = protowire.AppendVarint(label, 42)
	label = protowire.AppendTag(label, 2, protowire.BytesType)
	label = protowire.AppendString(label, "up")
	var series []byte
	series = protowire.AppendTag(series, 1, protowire.BytesType)
	series = protowire.AppendBytes(series, label)
	series = protowire.AppendTag(series, 15, protowire.Fixed32Type) // unknown
	series = protowire.AppendFixed32(series, 1)
	var buf []byte
	buf = protowire.AppendTag(buf, 2, protowire.BytesType) // unknown top-level field
	buf = protowire.AppendString(buf, "ignored")
	buf = protowire.AppendTag(buf, 1, protowire.BytesType)
	buf = protowire.AppendBytes(buf, series)

	var got prompb.WriteRequest
	require.NoError(t, Unmarshal(buf, &got))
	require.Equal(t, []prompb.Label{{Name: "__name__", Value: "up"}}, got.Timeseries[0].Labels)
}

func TestUnmarshalRejectsMalformed(t *testing.T) {
	good, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "up"}},
		Samples: []prompb.Sample{{Timestamp: 1, Value: 1}},
	}}}).Marshal()
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		buf  []byte
	}{
		{"truncated", good[:len(good)-3]},
		{"garbage", []byte("\xff\xff\xff not a protobuf")},
		{"length past the end", []byte{0x0a, 0x7f, 0x01}},
		{"bad varint", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got prompb.WriteRequest
			require.Error(t, Unmarshal(tc.buf, &got))
			require.Error(t, got.Unmarshal(tc.buf), "the generated decoder agrees")
		})
	}
}

func FuzzUnmarshal(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 5; i++ {
		buf, _ := randomRequest(r, 5).Marshal()
		f.Add(buf)
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		var gen, got prompb.WriteRequest
		// Either may refuse what the other accepts at the edges (wrong wire
		// types ours skips; over-long varints only ours rejects); neither
		// may crash, and where both accept they must agree.
		if gen.Unmarshal(buf) != nil || Unmarshal(buf, &got) != nil {
			return
		}
		normalize(&gen)
		normalize(&got)
		require.Equal(t, gen, got)
	})
}

func BenchmarkUnmarshal(b *testing.B) {
	req := &prompb.WriteRequest{}
	for i := 0; i < 1000; i++ {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "http_requests_total"}}}
		for _, n := range []string{"cluster", "container", "instance", "job", "method", "namespace", "path", "pod", "status"} {
			ts.Labels = append(ts.Labels, prompb.Label{Name: n, Value: fmt.Sprintf("%s-value-%04d", n, i)})
		}
		ts.Samples = []prompb.Sample{{Timestamp: 1700000000000, Value: float64(i)}}
		req.Timeseries = append(req.Timeseries, ts)
	}
	buf, err := req.Marshal()
	require.NoError(b, err)
	var arena Arena
	var raw [][]byte
	for _, bc := range []struct {
		name string
		f    func([]byte, *prompb.WriteRequest) error
	}{
		{"generated", func(b []byte, r *prompb.WriteRequest) error { return r.Unmarshal(b) }},
		{"zero-copy", Unmarshal},
		// As the distributor decodes: into a reused arena, with the raw
		// encoding of each series.
		{"zero-copy-reused-arena", func(b []byte, r *prompb.WriteRequest) error { return arena.Unmarshal(b, r, &raw) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var r prompb.WriteRequest
				if err := bc.f(buf, &r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/sample")
		})
	}
}

// TestDecodeLabel checks the fast path and the general decoding of a label
// against the generated code, on encodings clients send and ones they may.
func TestDecodeLabel(t *testing.T) {
	long := strings.Repeat("n", 200)
	enc := func(fields ...any) []byte { // pairs of field number and string
		var b []byte
		for i := 0; i < len(fields); i += 2 {
			b = protowire.AppendTag(b, protowire.Number(fields[i].(int)), protowire.BytesType)
			b = protowire.AppendString(b, fields[i+1].(string))
		}
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"name then value", enc(1, "job", 2, "api")},
		{"empty name and value", enc(1, "", 2, "")},
		{"long name", enc(1, long, 2, "v")},
		{"long value", enc(1, "n", 2, long)},
		{"value then name", enc(2, "api", 1, "job")},
		{"name only", enc(1, "job")},
		{"repeated name", enc(1, "a", 1, "b", 2, "v")},
		{"unknown field after", append(enc(1, "job", 2, "api"), protowire.AppendVarint(protowire.AppendTag(nil, 5, protowire.VarintType), 7)...)},
		{"unknown field between", enc(1, "job", 9, "x", 2, "api")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want prompb.Label
			require.NoError(t, want.Unmarshal(tc.b))
			var got prompb.Label
			require.NoError(t, decodeLabel(tc.b, &got))
			require.Equal(t, want.Name, got.Name)
			require.Equal(t, want.Value, got.Value)
		})
	}
	for _, b := range [][]byte{{0x0a, 5, 'j'}, {0x0a, 1, 'j', 0x12}, {0x0a, 1, 'j', 0x12, 3, 'a'}} {
		var l prompb.Label
		require.Error(t, decodeLabel(b, &l), "%x", b)
	}
}
