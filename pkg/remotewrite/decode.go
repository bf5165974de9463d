package remotewrite

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the remote-write 1.0 messages.
const (
	fieldWriteTimeseries = 1
	fieldWriteMetadata   = 3

	fieldSeriesLabels     = 1
	fieldSeriesSamples    = 2
	fieldSeriesExemplars  = 3
	fieldSeriesHistograms = 4

	fieldLabelName  = 1
	fieldLabelValue = 2

	fieldSampleValue     = 1
	fieldSampleTimestamp = 2
)

// Unmarshal decodes a protobuf WriteRequest into req, like
// prompb.WriteRequest.Unmarshal but with a handful of allocations per
// request instead of a few dozen per series: every label name and value
// points into buf, and the labels and samples of all series share one
// array each. buf must therefore outlive req and never change; a label
// kept beyond the request (a new series in a TSDB head) must be cloned.
// Exemplars, histograms and metadata, rare on the hot path, are decoded by
// the generated code.
func Unmarshal(buf []byte, req *prompb.WriteRequest) error {
	var a Arena
	return a.Unmarshal(buf, req, nil)
}

// Arena is the memory that decoded requests live in: the series, their
// labels and samples, and the raw encodings. Decoding the next request into
// the same Arena reuses it instead of allocating anew, so a receiver that
// keeps one Arena per request in flight (in a sync.Pool, say) allocates
// next to nothing per request. What an earlier Unmarshal returned is
// overwritten: the caller must be done with it. The zero Arena is ready
// to use; an Arena is not safe for concurrent use.
type Arena struct {
	series  []prompb.TimeSeries
	raw     [][]byte
	labels  []prompb.Label
	samples []prompb.Sample
}

// Unmarshal is Unmarshal into the arena's memory; with raw not nil it also
// sets (*raw)[i] to the encoded bytes of req.Timeseries[i] (within buf), so
// that an unchanged series can be forwarded without encoding it again.
// req.Timeseries and *raw are set to the arena's slices.
func (a *Arena) Unmarshal(buf []byte, req *prompb.WriteRequest, raw *[][]byte) error {
	var (
		nSeries, nLabels, nSamples int
		err                        error
	)
	if cap(a.series) == 0 {
		// A fresh arena is sized by a first pass; a used one is usually
		// large enough already, and grows by appending if not (a series'
		// slices keep pointing into the array they were decoded into).
		if nSeries, nLabels, nSamples, err = count(buf); err != nil {
			return err
		}
	}
	req.Timeseries = grow(a.series, nSeries)
	if raw != nil {
		*raw = grow(a.raw, nSeries)
	}
	req.Metadata = req.Metadata[:0]
	labelArena := grow(a.labels, nLabels)
	sampleArena := grow(a.samples, nSamples)
	// Keep what was grown for the next request, whatever happens below.
	defer func() {
		a.series, a.labels, a.samples = req.Timeseries[:0], labelArena[:0], sampleArena[:0]
		if raw != nil {
			a.raw = (*raw)[:0]
		}
	}()
	for len(buf) > 0 {
		num, typ, n := consumeTag(buf)
		if n < 0 {
			return protowire.ParseError(n)
		}
		buf = buf[n:]
		switch {
		case num == fieldWriteTimeseries && typ == protowire.BytesType:
			b, n := consumeBytes(buf)
			if n < 0 {
				return protowire.ParseError(n)
			}
			buf = buf[n:]
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{})
			ts := &req.Timeseries[len(req.Timeseries)-1]
			if labelArena, sampleArena, err = decodeSeries(b, ts, labelArena, sampleArena); err != nil {
				return fmt.Errorf("series %d: %w", len(req.Timeseries)-1, err)
			}
			if raw != nil {
				*raw = append(*raw, b)
			}
		case num == fieldWriteMetadata && typ == protowire.BytesType:
			b, n := consumeBytes(buf)
			if n < 0 {
				return protowire.ParseError(n)
			}
			buf = buf[n:]
			var md prompb.MetricMetadata
			if err := md.Unmarshal(b); err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
			req.Metadata = append(req.Metadata, md)
		default:
			n := protowire.ConsumeFieldValue(num, typ, buf)
			if n < 0 {
				return protowire.ParseError(n)
			}
			buf = buf[n:]
		}
	}
	return nil
}

// grow returns s emptied, with room for n elements.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, 0, n)
	}
	return s[:0]
}

// count walks buf once to size the arenas.
func count(buf []byte) (series, labels, samples int, err error) {
	for len(buf) > 0 {
		num, typ, n := consumeTag(buf)
		if n < 0 {
			return 0, 0, 0, protowire.ParseError(n)
		}
		buf = buf[n:]
		if num != fieldWriteTimeseries || typ != protowire.BytesType {
			n := protowire.ConsumeFieldValue(num, typ, buf)
			if n < 0 {
				return 0, 0, 0, protowire.ParseError(n)
			}
			buf = buf[n:]
			continue
		}
		b, n := consumeBytes(buf)
		if n < 0 {
			return 0, 0, 0, protowire.ParseError(n)
		}
		buf = buf[n:]
		series++
		for len(b) > 0 {
			num, typ, n := consumeTag(b)
			if n < 0 {
				return 0, 0, 0, protowire.ParseError(n)
			}
			b = b[n:]
			switch {
			case num == fieldSeriesLabels && typ == protowire.BytesType:
				labels++
			case num == fieldSeriesSamples && typ == protowire.BytesType:
				samples++
			}
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return 0, 0, 0, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return series, labels, samples, nil
}

func decodeSeries(b []byte, ts *prompb.TimeSeries, labelArena []prompb.Label, sampleArena []prompb.Sample) ([]prompb.Label, []prompb.Sample, error) {
	firstLabel, firstSample := len(labelArena), len(sampleArena)
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return nil, nil, protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, nil, protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := consumeBytes(b)
		if n < 0 {
			return nil, nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch num {
		case fieldSeriesLabels:
			labelArena = append(labelArena, prompb.Label{})
			if err := decodeLabel(v, &labelArena[len(labelArena)-1]); err != nil {
				return nil, nil, err
			}
		case fieldSeriesSamples:
			s, err := decodeSample(v)
			if err != nil {
				return nil, nil, err
			}
			sampleArena = append(sampleArena, s)
		case fieldSeriesExemplars:
			var e prompb.Exemplar
			if err := e.Unmarshal(v); err != nil {
				return nil, nil, fmt.Errorf("exemplar: %w", err)
			}
			ts.Exemplars = append(ts.Exemplars, e)
		case fieldSeriesHistograms:
			var h prompb.Histogram
			if err := h.Unmarshal(v); err != nil {
				return nil, nil, fmt.Errorf("histogram: %w", err)
			}
			ts.Histograms = append(ts.Histograms, h)
		}
	}
	// Full slice expressions: appending to one series' slice must never
	// overwrite the next series' labels or samples.
	if len(labelArena) > firstLabel {
		ts.Labels = labelArena[firstLabel:len(labelArena):len(labelArena)]
	}
	if len(sampleArena) > firstSample {
		ts.Samples = sampleArena[firstSample:len(sampleArena):len(sampleArena)]
	}
	return labelArena, sampleArena, nil
}

// decodeLabel decodes a Label into l, which must be zero.
func decodeLabel(b []byte, l *prompb.Label) error {
	// What clients send: the name, then the value, each shorter than 128
	// bytes, and nothing else. The loop below decodes the same bytes to the
	// same label, only slower.
	if len(b) >= 4 && b[0] == fieldLabelName<<3|byte(protowire.BytesType) && b[1] < 0x80 {
		n := int(b[1])
		if 4+n <= len(b) && b[2+n] == fieldLabelValue<<3|byte(protowire.BytesType) && b[3+n] < 0x80 && 4+n+int(b[3+n]) == len(b) {
			l.Name, l.Value = yoloString(b[2:2+n]), yoloString(b[4+n:])
			return nil
		}
	}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == fieldLabelName || num == fieldLabelValue) {
			v, n := consumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			if num == fieldLabelName {
				l.Name = yoloString(v)
			} else {
				l.Value = yoloString(v)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}

func decodeSample(b []byte) (prompb.Sample, error) {
	var s prompb.Sample
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return s, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == fieldSampleValue && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return s, protowire.ParseError(n)
			}
			b = b[n:]
			s.Value = math.Float64frombits(v)
		case num == fieldSampleTimestamp && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return s, protowire.ParseError(n)
			}
			b = b[n:]
			s.Timestamp = int64(v)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return s, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return s, nil
}

// yoloString views b as a string without copying.
func yoloString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// The fast paths below cover what remote-write clients send: one-byte tags
// (field numbers below 16) and one-byte lengths; anything else goes through
// protowire.

// consumeTag is protowire.ConsumeTag with a fast path for one-byte tags.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	return protowire.ConsumeTag(b)
}

// consumeBytes is protowire.ConsumeBytes with a fast path for lengths
// below 128.
func consumeBytes(b []byte) ([]byte, int) {
	if len(b) > 0 && b[0] < 0x80 {
		n := int(b[0])
		if n+1 > len(b) {
			return nil, -1 // protowire's code for a truncated message
		}
		return b[1 : 1+n], 1 + n
	}
	return protowire.ConsumeBytes(b)
}
