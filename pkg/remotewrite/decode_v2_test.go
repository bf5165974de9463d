package remotewrite

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

func marshalV2(t testing.TB, req *writev2.Request) []byte {
	t.Helper()
	buf, err := req.Marshal()
	require.NoError(t, err)
	return buf
}

func TestUnmarshalV2(t *testing.T) {
	// Symbol indexes, named for readability.
	const (
		sName = iota + 1
		sUp
		sJob
		sAPI
		sInstance
		sA
		sB
		sReqs
		sHelp
		sHelp2
		sTemp
		sCelsius
		sTraceID
		sABC
		sLatency
	)
	symbols := []string{"", "__name__", "up", "job", "api", "instance", "a:80", "b:80", "http_requests_total", "Requests served.", "Requests.", "temperature", "celsius", "trace_id", "abc", "latency_seconds"}
	up := func(instance uint32) []uint32 { return []uint32{sName, sUp, sInstance, instance, sJob, sAPI} }
	upLabels := func(instance string) []prompb.Label {
		return []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "instance", Value: instance}, {Name: "job", Value: "api"}}
	}
	intHist := &histogram.Histogram{
		CounterResetHint: histogram.NotCounterReset, Schema: 3, ZeroThreshold: 1e-3, ZeroCount: 2, Count: 12, Sum: 18.5,
		PositiveSpans: []histogram.Span{{Offset: -2, Length: 2}, {Offset: 3, Length: 1}}, PositiveBuckets: []int64{1, 2, -1},
		NegativeSpans: []histogram.Span{{Offset: 0, Length: 1}}, NegativeBuckets: []int64{4},
	}
	floatHist := &histogram.FloatHistogram{
		CounterResetHint: histogram.GaugeType, Schema: -1, ZeroThreshold: 0.5, ZeroCount: 1.5, Count: 7.25, Sum: -3,
		PositiveSpans: []histogram.Span{{Offset: 1, Length: 2}}, PositiveBuckets: []float64{2.5, 3.25},
		NegativeSpans: []histogram.Span{{Offset: -1, Length: 1}}, NegativeBuckets: []float64{0.5},
	}
	customHist := &histogram.Histogram{
		CounterResetHint: histogram.CounterReset, Schema: histogram.CustomBucketsSchema, Count: 5, Sum: 2.5,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []int64{1, 1, 0},
		CustomValues: []float64{0.1, 0.5, 1},
	}

	for _, tc := range []struct {
		name string
		in   *writev2.Request
		want *prompb.WriteRequest
	}{
		{
			name: "empty request",
			in:   &writev2.Request{},
			want: &prompb.WriteRequest{},
		},
		{
			name: "floats, series sharing symbols",
			in: &writev2.Request{Symbols: symbols, Timeseries: []writev2.TimeSeries{
				{LabelsRefs: up(sA), Samples: []writev2.Sample{{Value: 1, Timestamp: 1000}, {Value: 0, Timestamp: 2000, StartTimestamp: 500}}},
				{LabelsRefs: up(sB), Samples: []writev2.Sample{{Value: math.Inf(-1), Timestamp: -5}}},
				{LabelsRefs: []uint32{sName, sUp, sJob, 0}, Samples: []writev2.Sample{{Value: 2.5, Timestamp: 3000}}},
			}},
			want: &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				{Labels: upLabels("a:80"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1000}, {Value: 0, Timestamp: 2000}}},
				{Labels: upLabels("b:80"), Samples: []prompb.Sample{{Value: math.Inf(-1), Timestamp: -5}}},
				{Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: ""}}, Samples: []prompb.Sample{{Value: 2.5, Timestamp: 3000}}},
			}},
		},
		{
			name: "integer, float and custom-bucket native histograms",
			in: &writev2.Request{Symbols: symbols, Timeseries: []writev2.TimeSeries{
				{LabelsRefs: []uint32{sName, sLatency}, Histograms: []writev2.Histogram{
					writev2.FromIntHistogram(100, 1000, intHist),
					writev2.FromIntHistogram(0, 2000, customHist),
				}},
				{LabelsRefs: []uint32{sName, sTemp}, Histograms: []writev2.Histogram{writev2.FromFloatHistogram(0, 3000, floatHist)}},
			}},
			want: &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				{Labels: []prompb.Label{{Name: "__name__", Value: "latency_seconds"}}, Histograms: []prompb.Histogram{
					{
						Count: &prompb.Histogram_CountInt{CountInt: 12}, Sum: 18.5, Schema: 3, ZeroThreshold: 1e-3,
						ZeroCount:     &prompb.Histogram_ZeroCountInt{ZeroCountInt: 2},
						NegativeSpans: []prompb.BucketSpan{{Offset: 0, Length: 1}}, NegativeDeltas: []int64{4},
						PositiveSpans: []prompb.BucketSpan{{Offset: -2, Length: 2}, {Offset: 3, Length: 1}}, PositiveDeltas: []int64{1, 2, -1},
						ResetHint: prompb.Histogram_NO, Timestamp: 1000,
					},
					{
						Count: &prompb.Histogram_CountInt{CountInt: 5}, Sum: 2.5, Schema: -53,
						ZeroCount:     &prompb.Histogram_ZeroCountInt{ZeroCountInt: 0},
						PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 3}}, PositiveDeltas: []int64{1, 1, 0},
						ResetHint: prompb.Histogram_YES, Timestamp: 2000, CustomValues: []float64{0.1, 0.5, 1},
					},
				}},
				{Labels: []prompb.Label{{Name: "__name__", Value: "temperature"}}, Histograms: []prompb.Histogram{{
					Count: &prompb.Histogram_CountFloat{CountFloat: 7.25}, Sum: -3, Schema: -1, ZeroThreshold: 0.5,
					ZeroCount:     &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: 1.5},
					NegativeSpans: []prompb.BucketSpan{{Offset: -1, Length: 1}}, NegativeCounts: []float64{0.5},
					PositiveSpans: []prompb.BucketSpan{{Offset: 1, Length: 2}}, PositiveCounts: []float64{2.5, 3.25},
					ResetHint: prompb.Histogram_GAUGE, Timestamp: 3000,
				}}},
			}},
		},
		{
			name: "exemplars, with and without samples",
			in: &writev2.Request{Symbols: symbols, Timeseries: []writev2.TimeSeries{
				{LabelsRefs: up(sA), Samples: []writev2.Sample{{Value: 3, Timestamp: 1000}}, Exemplars: []writev2.Exemplar{
					{LabelsRefs: []uint32{sTraceID, sABC}, Value: 0.25, Timestamp: 990},
					{Value: 7, Timestamp: 995},
				}},
				{LabelsRefs: up(sB), Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{sTraceID, sABC, sJob, sAPI}, Value: 1, Timestamp: 1}}},
			}},
			want: &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				{Labels: upLabels("a:80"), Samples: []prompb.Sample{{Value: 3, Timestamp: 1000}}, Exemplars: []prompb.Exemplar{
					{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 0.25, Timestamp: 990},
					{Value: 7, Timestamp: 995},
				}},
				{Labels: upLabels("b:80"), Exemplars: []prompb.Exemplar{
					{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}, {Name: "job", Value: "api"}}, Value: 1, Timestamp: 1},
				}},
			}},
		},
		{
			name: "metadata, once per distinct entry",
			in: &writev2.Request{Symbols: symbols, Timeseries: []writev2.TimeSeries{
				{LabelsRefs: []uint32{sName, sReqs, sInstance, sA}, Samples: []writev2.Sample{{Value: 1}},
					Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: sHelp}},
				{LabelsRefs: []uint32{sName, sReqs, sInstance, sB}, Samples: []writev2.Sample{{Value: 2}},
					Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: sHelp}},
				{LabelsRefs: []uint32{sName, sTemp}, Samples: []writev2.Sample{{Value: 3}},
					Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, UnitRef: sCelsius}},
				{LabelsRefs: []uint32{sName, sReqs, sJob, sAPI}, Samples: []writev2.Sample{{Value: 4}},
					Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: sHelp}},
				// Another help for the same family is another entry.
				{LabelsRefs: []uint32{sName, sReqs}, Samples: []writev2.Sample{{Value: 5}},
					Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: sHelp2}},
				// No metadata, and metadata without a metric name: nothing.
				{LabelsRefs: up(sA), Samples: []writev2.Sample{{Value: 6}}},
				{LabelsRefs: []uint32{sJob, sAPI}, Samples: []writev2.Sample{{Value: 7}},
					Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE}},
				{LabelsRefs: []uint32{sName, sLatency}, Samples: []writev2.Sample{{Value: 8}},
					Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM}},
			}},
			want: &prompb.WriteRequest{
				Timeseries: []prompb.TimeSeries{
					{Labels: []prompb.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "instance", Value: "a:80"}}, Samples: []prompb.Sample{{Value: 1}}},
					{Labels: []prompb.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "instance", Value: "b:80"}}, Samples: []prompb.Sample{{Value: 2}}},
					{Labels: []prompb.Label{{Name: "__name__", Value: "temperature"}}, Samples: []prompb.Sample{{Value: 3}}},
					{Labels: []prompb.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "job", Value: "api"}}, Samples: []prompb.Sample{{Value: 4}}},
					{Labels: []prompb.Label{{Name: "__name__", Value: "http_requests_total"}}, Samples: []prompb.Sample{{Value: 5}}},
					{Labels: upLabels("a:80"), Samples: []prompb.Sample{{Value: 6}}},
					{Labels: []prompb.Label{{Name: "job", Value: "api"}}, Samples: []prompb.Sample{{Value: 7}}},
					{Labels: []prompb.Label{{Name: "__name__", Value: "latency_seconds"}}, Samples: []prompb.Sample{{Value: 8}}},
				},
				Metadata: []prompb.MetricMetadata{
					{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests served."},
					{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "temperature", Unit: "celsius"},
					{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests."},
					{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "latency_seconds"},
				},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got prompb.WriteRequest
			require.NoError(t, UnmarshalV2(marshalV2(t, tc.in), &got))
			normalize(&got)
			require.Equal(t, *tc.want, got)
		})
	}
}

// TestUnmarshalV2Wire covers what the generated encoder never writes but a
// protobuf encoder may: symbols after the series, labels_refs split into
// several pieces (packed and not) around other fields, unknown fields, and
// metadata sent twice (merged).
func TestUnmarshalV2Wire(t *testing.T) {
	var series []byte
	series = protowire.AppendTag(series, 1, protowire.BytesType) // labels_refs, packed
	series = protowire.AppendBytes(series, []byte{1})
	series = protowire.AppendTag(series, 2, protowire.BytesType) // a sample
	series = protowire.AppendBytes(series, protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 42))
	series = protowire.AppendTag(series, 4, protowire.BytesType) // an exemplar between the label pieces
	series = protowire.AppendBytes(series, []byte{0x0a, 0x02, 3, 4})
	series = protowire.AppendTag(series, 1, protowire.VarintType) // labels_refs, unpacked
	series = protowire.AppendVarint(series, 2)
	series = protowire.AppendTag(series, 1, protowire.BytesType) // labels_refs, packed again
	series = protowire.AppendBytes(series, []byte{3, 4})
	series = protowire.AppendTag(series, 5, protowire.BytesType) // metadata: type gauge, help 3
	series = protowire.AppendBytes(series, []byte{0x08, 2, 0x18, 3})
	series = protowire.AppendTag(series, 5, protowire.BytesType) // metadata again: help 4
	series = protowire.AppendBytes(series, []byte{0x18, 4})
	series = protowire.AppendTag(series, 9, protowire.Fixed32Type) // unknown
	series = protowire.AppendFixed32(series, 7)

	var buf []byte
	buf = protowire.AppendTag(buf, 5, protowire.BytesType)
	buf = protowire.AppendBytes(buf, series)
	buf = protowire.AppendTag(buf, 7, protowire.BytesType) // unknown
	buf = protowire.AppendString(buf, "ignored")
	for _, s := range []string{"", "__name__", "up", "job", "api"} {
		buf = protowire.AppendTag(buf, 4, protowire.BytesType)
		buf = protowire.AppendString(buf, s)
	}

	var got prompb.WriteRequest
	require.NoError(t, UnmarshalV2(buf, &got))
	normalize(&got)
	require.Equal(t, prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{{
			Labels:    []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "api"}},
			Samples:   []prompb.Sample{{Timestamp: 42}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "job", Value: "api"}}}},
		}},
		Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "up", Help: "api"}},
	}, got)
}

func TestUnmarshalV2Rejects(t *testing.T) {
	symbols := []string{"", "__name__", "up"}
	good := marshalV2(t, &writev2.Request{Symbols: symbols, Timeseries: []writev2.TimeSeries{
		{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Value: 1, Timestamp: 2}}},
	}})
	v1, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "up"}}}}}).Marshal()
	require.NoError(t, err)
	withSeries := func(ts ...writev2.TimeSeries) []byte {
		return marshalV2(t, &writev2.Request{Symbols: symbols, Timeseries: ts})
	}
	okSeries := writev2.TimeSeries{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Value: 1}}}
	// A series whose histogram has packed doubles of 12 bytes.
	var hist []byte
	hist = protowire.AppendTag(hist, 13, protowire.BytesType)
	hist = protowire.AppendBytes(hist, make([]byte, 12))
	var badHist []byte
	badHist = protowire.AppendTag(badHist, 1, protowire.BytesType)
	badHist = protowire.AppendBytes(badHist, []byte{1, 2})
	badHist = protowire.AppendTag(badHist, 3, protowire.BytesType)
	badHist = protowire.AppendBytes(badHist, hist)
	// A series whose packed labels_refs ends inside a varint.
	var badRefs []byte
	badRefs = protowire.AppendTag(badRefs, 1, protowire.BytesType)
	badRefs = protowire.AppendBytes(badRefs, []byte{1, 0x82})

	for _, tc := range []struct {
		name     string
		buf      []byte
		wantErr  string
		contains string // instead of wantErr
		is       error
	}{
		{name: "truncated", buf: good[:len(good)-3], wantErr: "unexpected EOF"},
		// protowire's messages vary their spaces on purpose: only part is checked.
		{name: "garbage", buf: []byte("\xff\xff\xff not a protobuf"), contains: "cannot parse reserved wire type"},
		{name: "length past the end", buf: []byte{0x2a, 0x7f, 0x01}, wantErr: "unexpected EOF"},
		{name: "remote-write 1.0 request", buf: v1, is: ErrV2ReservedField,
			wantErr: "field 1: reserved field of io.prometheus.write.v2.Request (a remote-write 1.0 prometheus.WriteRequest sent as 2.0?)"},
		{name: "first symbol not empty", buf: marshalV2(t, &writev2.Request{Symbols: []string{"__name__", "up"}}), is: ErrV2FirstSymbol,
			wantErr: `symbols[0] must be the empty string, not "__name__"`},
		{name: "series without symbols", buf: marshalV2(t, &writev2.Request{Timeseries: []writev2.TimeSeries{{Samples: []writev2.Sample{{Value: 1}}}}}), is: ErrV2FirstSymbol,
			wantErr: "symbols[0] must be the empty string: the request has series but no symbols"},
		{name: "label ref out of range", buf: withSeries(okSeries, writev2.TimeSeries{LabelsRefs: []uint32{1, 3}}), is: ErrV2SymbolRef,
			wantErr: "series 1: labels_refs: symbol reference outside the symbols table: 3, table size 3"},
		{name: "odd labels_refs", buf: withSeries(writev2.TimeSeries{LabelsRefs: []uint32{1, 2, 1}}), is: ErrV2OddLabelRefs,
			wantErr: "series 0: labels_refs has an odd length (3 refs)"},
		{name: "bad varint in labels_refs", buf: wire(withSeries(okSeries, okSeries, okSeries)).append(5, badRefs),
			wantErr: "series 3: labels_refs: unexpected EOF"},
		{name: "exemplar ref out of range", buf: withSeries(writev2.TimeSeries{LabelsRefs: []uint32{1, 2}, Exemplars: []writev2.Exemplar{{}, {LabelsRefs: []uint32{7, 2}}}}), is: ErrV2SymbolRef,
			wantErr: "series 0: exemplar 1: labels_refs: symbol reference outside the symbols table: 7, table size 3"},
		{name: "odd exemplar labels_refs", buf: withSeries(writev2.TimeSeries{LabelsRefs: []uint32{1, 2}, Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{1}}}}), is: ErrV2OddLabelRefs,
			wantErr: "series 0: exemplar 0: labels_refs has an odd length (1 refs)"},
		{name: "help_ref out of range", buf: withSeries(writev2.TimeSeries{LabelsRefs: []uint32{1, 2}, Metadata: writev2.Metadata{HelpRef: 3}}), is: ErrV2SymbolRef,
			wantErr: "series 0: metadata help_ref: symbol reference outside the symbols table: 3, table size 3"},
		{name: "unit_ref out of range", buf: withSeries(writev2.TimeSeries{LabelsRefs: []uint32{1, 2}, Metadata: writev2.Metadata{Type: 1, UnitRef: 1000}}), is: ErrV2SymbolRef,
			wantErr: "series 0: metadata unit_ref: symbol reference outside the symbols table: 1000, table size 3"},
		{name: "packed doubles not a multiple of 8 bytes", buf: wire(withSeries()).append(5, badHist),
			wantErr: "series 0: histogram 0: field 13: packed doubles of 12 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got prompb.WriteRequest
			err := UnmarshalV2(tc.buf, &got)
			if tc.contains != "" {
				require.ErrorContains(t, err, tc.contains)
			} else {
				require.EqualError(t, err, tc.wantErr)
			}
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
		})
	}
}

// wire is an encoded message that fields can be appended to.
type wire []byte

func (w wire) append(num protowire.Number, b []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(w, num, protowire.BytesType), b)
}

func TestArenaV2Reuse(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var a ArenaV2
	for i := 0; i < 50; i++ {
		buf := marshalV2(t, randomRequestV2(r, r.IntN(20)))
		var fresh, reused prompb.WriteRequest
		require.NoError(t, UnmarshalV2(buf, &fresh))
		require.NoError(t, a.Unmarshal(buf, &reused))
		normalize(&fresh)
		normalize(&reused)
		require.Equal(t, fresh, reused, "request %d", i)
	}
	// A failed request leaves the arena usable.
	require.Error(t, a.Unmarshal([]byte{0x2a, 0x7f}, &prompb.WriteRequest{}))
	var got prompb.WriteRequest
	require.NoError(t, a.Unmarshal(marshalV2(t, &writev2.Request{Symbols: []string{"", "__name__", "up"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 2}}}}), &got))
	require.Equal(t, []prompb.Label{{Name: "__name__", Value: "up"}}, got.Timeseries[0].Labels)
}

func TestUnmarshalV2SeriesDoNotShareCapacity(t *testing.T) {
	buf := marshalV2(t, &writev2.Request{Symbols: []string{"", "__name__", "a", "b", "trace_id", "x"}, Timeseries: []writev2.TimeSeries{
		{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Timestamp: 1}}, Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{4, 5}}},
			Histograms: []writev2.Histogram{{Timestamp: 1}}},
		{LabelsRefs: []uint32{1, 3}, Samples: []writev2.Sample{{Timestamp: 2}}, Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{4, 2}}},
			Histograms: []writev2.Histogram{{Timestamp: 2}}},
	}})
	var got prompb.WriteRequest
	require.NoError(t, UnmarshalV2(buf, &got))
	ts := &got.Timeseries[0]
	ts.Labels = append(ts.Labels, prompb.Label{Name: "x", Value: "y"})
	ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: 3})
	ts.Exemplars[0].Labels = append(ts.Exemplars[0].Labels, prompb.Label{Name: "x", Value: "y"})
	ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Timestamp: 3})
	ts.Histograms = append(ts.Histograms, prompb.Histogram{Timestamp: 3})
	next := got.Timeseries[1]
	require.Equal(t, "b", next.Labels[0].Value)
	require.Equal(t, int64(2), next.Samples[0].Timestamp)
	require.Equal(t, []prompb.Label{{Name: "trace_id", Value: "a"}}, next.Exemplars[0].Labels)
	require.Equal(t, int64(2), next.Histograms[0].Timestamp)
}

// randomRequestV2 builds a 2.0 request with every kind of content.
func randomRequestV2(r *rand.Rand, nSeries int) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for i := 0; i < nSeries; i++ {
		name := fmt.Sprintf("metric_%d", r.IntN(5))
		ts := writev2.TimeSeries{LabelsRefs: []uint32{st.Symbolize("__name__"), st.Symbolize(name)}}
		for l := 0; l < r.IntN(10); l++ {
			ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize(fmt.Sprintf("l%d", l)), st.Symbolize(fmt.Sprintf("v%d", r.IntN(1000))))
		}
		if r.IntN(4) == 0 {
			ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize("empty"), 0)
		}
		switch r.IntN(6) {
		case 0:
			h := &histogram.Histogram{Count: uint64(r.IntN(100)), Sum: r.NormFloat64(), Schema: int32(r.IntN(8) - 4), ZeroCount: 1,
				PositiveSpans: []histogram.Span{{Offset: int32(r.IntN(9) - 4), Length: 2}}, PositiveBuckets: []int64{int64(r.IntN(9) - 4), 0},
				NegativeSpans: []histogram.Span{{Offset: 1, Length: 1}}, NegativeBuckets: []int64{3}, CounterResetHint: histogram.CounterResetHint(r.IntN(4))}
			ts.Histograms = append(ts.Histograms, writev2.FromIntHistogram(r.Int64N(100), r.Int64N(1<<42), h))
		case 1:
			h := &histogram.FloatHistogram{Count: 3.5, Sum: r.NormFloat64(), Schema: histogram.CustomBucketsSchema,
				PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []float64{1.5, 2}, CustomValues: []float64{1, 2}}
			ts.Histograms = append(ts.Histograms, writev2.FromFloatHistogram(0, r.Int64N(1<<42), h))
		default:
			for s := 0; s < r.IntN(4); s++ {
				ts.Samples = append(ts.Samples, writev2.Sample{Timestamp: r.Int64N(1 << 42), Value: r.NormFloat64(), StartTimestamp: r.Int64N(2)})
			}
		}
		if r.IntN(6) == 0 {
			e := writev2.Exemplar{Value: r.NormFloat64(), Timestamp: r.Int64N(1 << 42)}
			if r.IntN(2) == 0 {
				e.LabelsRefs = []uint32{st.Symbolize("trace_id"), st.Symbolize(fmt.Sprintf("%x", r.Uint64()))}
			}
			ts.Exemplars = append(ts.Exemplars, e)
		}
		if r.IntN(2) == 0 {
			ts.Metadata = writev2.Metadata{
				Type:    writev2.Metadata_MetricType(r.IntN(8)),
				HelpRef: st.Symbolize([]string{"", "help " + name, "other help"}[r.IntN(3)]),
				UnitRef: st.Symbolize([]string{"", "seconds"}[r.IntN(2)]),
			}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	return req
}

// v2ToV1 converts a request decoded by the generated code the way
// UnmarshalV2 is specified to: the reference it is compared with.
func v2ToV1(req *writev2.Request) (*prompb.WriteRequest, error) {
	syms := req.Symbols
	if len(syms) > 0 && syms[0] != "" || len(syms) == 0 && len(req.Timeseries) > 0 {
		return nil, ErrV2FirstSymbol
	}
	resolve := func(refs []uint32) ([]prompb.Label, error) {
		if len(refs)%2 != 0 {
			return nil, ErrV2OddLabelRefs
		}
		var ls []prompb.Label
		for i := 0; i < len(refs); i += 2 {
			if int(refs[i]) >= len(syms) || int(refs[i+1]) >= len(syms) {
				return nil, ErrV2SymbolRef
			}
			ls = append(ls, prompb.Label{Name: syms[refs[i]], Value: syms[refs[i+1]]})
		}
		return ls, nil
	}
	out := &prompb.WriteRequest{}
	seen := map[metadataKey]bool{}
	for _, ts := range req.Timeseries {
		var s prompb.TimeSeries
		var err error
		if s.Labels, err = resolve(ts.LabelsRefs); err != nil {
			return nil, err
		}
		for _, x := range ts.Samples {
			s.Samples = append(s.Samples, prompb.Sample{Value: x.Value, Timestamp: x.Timestamp})
		}
		for _, h := range ts.Histograms {
			ph := prompb.Histogram{
				Sum: h.Sum, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold,
				NegativeDeltas: h.NegativeDeltas, NegativeCounts: h.NegativeCounts,
				PositiveDeltas: h.PositiveDeltas, PositiveCounts: h.PositiveCounts,
				ResetHint: prompb.Histogram_ResetHint(h.ResetHint), Timestamp: h.Timestamp, CustomValues: h.CustomValues,
			}
			switch c := h.Count.(type) {
			case *writev2.Histogram_CountInt:
				ph.Count = &prompb.Histogram_CountInt{CountInt: c.CountInt}
			case *writev2.Histogram_CountFloat:
				ph.Count = &prompb.Histogram_CountFloat{CountFloat: c.CountFloat}
			}
			switch c := h.ZeroCount.(type) {
			case *writev2.Histogram_ZeroCountInt:
				ph.ZeroCount = &prompb.Histogram_ZeroCountInt{ZeroCountInt: c.ZeroCountInt}
			case *writev2.Histogram_ZeroCountFloat:
				ph.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: c.ZeroCountFloat}
			}
			for _, sp := range h.NegativeSpans {
				ph.NegativeSpans = append(ph.NegativeSpans, prompb.BucketSpan{Offset: sp.Offset, Length: sp.Length})
			}
			for _, sp := range h.PositiveSpans {
				ph.PositiveSpans = append(ph.PositiveSpans, prompb.BucketSpan{Offset: sp.Offset, Length: sp.Length})
			}
			s.Histograms = append(s.Histograms, ph)
		}
		for _, e := range ts.Exemplars {
			ls, err := resolve(e.LabelsRefs)
			if err != nil {
				return nil, err
			}
			s.Exemplars = append(s.Exemplars, prompb.Exemplar{Labels: ls, Value: e.Value, Timestamp: e.Timestamp})
		}
		out.Timeseries = append(out.Timeseries, s)
		md := ts.Metadata
		if int(md.HelpRef) >= len(syms) || int(md.UnitRef) >= len(syms) {
			return nil, ErrV2SymbolRef
		}
		k := metadataKey{typ: prompb.MetricMetadata_MetricType(md.Type), help: syms[md.HelpRef], unit: syms[md.UnitRef]}
		for _, l := range s.Labels {
			if l.Name == "__name__" {
				k.family = l.Value
				break
			}
		}
		if k.family == "" || (k.typ == 0 && k.help == "" && k.unit == "") || seen[k] {
			continue
		}
		seen[k] = true
		out.Metadata = append(out.Metadata, prompb.MetricMetadata{Type: k.typ, MetricFamilyName: k.family, Help: k.help, Unit: k.unit})
	}
	return out, nil
}

// TestUnmarshalV2MatchesGenerated decodes random requests with UnmarshalV2
// and with the generated code plus v2ToV1, and requires the same result.
func TestUnmarshalV2MatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		buf := marshalV2(t, randomRequestV2(r, r.IntN(30)))
		var gen writev2.Request
		require.NoError(t, gen.Unmarshal(buf))
		want, err := v2ToV1(&gen)
		require.NoError(t, err)
		var got prompb.WriteRequest
		require.NoError(t, UnmarshalV2(buf, &got))
		normalize(want)
		normalize(&got)
		require.Equal(t, *want, got, "request %d", i)
	}
}

func FuzzUnmarshalV2(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 8; i++ {
		f.Add(marshalV2(f, randomRequestV2(r, 1+i)))
	}
	f.Add(marshalV2(f, &writev2.Request{Symbols: []string{"", "__name__", "up"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 2, 1}}}}))
	var arena ArenaV2
	f.Fuzz(func(t *testing.T, buf []byte) {
		var got, reused prompb.WriteRequest
		err := UnmarshalV2(buf, &got)
		// The same decoding into an arena that held an earlier request.
		errReused := arena.Unmarshal(buf, &reused)
		require.Equal(t, err == nil, errReused == nil)
		var gen writev2.Request
		// Ours refuses what the generated code skips or truncates (reserved
		// fields, refs past 2^32) and skips what it refuses (known fields
		// with another wire type). Where both accept, they must agree.
		if err != nil || gen.Unmarshal(buf) != nil {
			return
		}
		want, err := v2ToV1(&gen)
		require.NoError(t, err, "UnmarshalV2 accepted what breaks the spec")
		normalize(want)
		normalize(&got)
		normalize(&reused)
		require.Equal(t, *want, got)
		require.Equal(t, got, reused)
	})
}

// BenchmarkUnmarshalV2 decodes the request of BenchmarkUnmarshal (1000
// series of 10 labels and one sample) in its 2.0 encoding.
func BenchmarkUnmarshalV2(b *testing.B) {
	build := func(metadata bool) []byte {
		st := writev2.NewSymbolTable()
		req := &writev2.Request{}
		for i := 0; i < 1000; i++ {
			ts := writev2.TimeSeries{LabelsRefs: []uint32{st.Symbolize("__name__"), st.Symbolize("http_requests_total")}}
			for _, n := range []string{"cluster", "container", "instance", "job", "method", "namespace", "path", "pod", "status"} {
				ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize(n), st.Symbolize(fmt.Sprintf("%s-value-%04d", n, i)))
			}
			ts.Samples = []writev2.Sample{{Timestamp: 1700000000000, Value: float64(i)}}
			if metadata {
				ts.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Total HTTP requests served.")}
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		req.Symbols = st.Symbols()
		return marshalV2(b, req)
	}
	plain, withMetadata := build(false), build(true)
	var arena ArenaV2
	for _, bc := range []struct {
		name string
		buf  []byte
		f    func([]byte, *prompb.WriteRequest) error
	}{
		// The generated code leaves the symbols unresolved: a floor, not a
		// competitor.
		{"generated", plain, func(b []byte, r *prompb.WriteRequest) error { var req writev2.Request; return req.Unmarshal(b) }},
		{"zero-copy", plain, UnmarshalV2},
		{"zero-copy-reused-arena", plain, arena.Unmarshal},
		{"zero-copy-with-metadata", withMetadata, UnmarshalV2},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.buf)))
			for b.Loop() {
				var r prompb.WriteRequest
				if err := bc.f(bc.buf, &r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/sample")
		})
	}
}
