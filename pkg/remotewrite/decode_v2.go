package remotewrite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the remote-write 2.0 messages (io.prometheus.write.v2).
// Sample and BucketSpan keep their 1.0 numbers; Histogram keeps them too
// and adds start_timestamp (17), which prompb.Histogram has no room for.
const (
	fieldV2Symbols    = 4
	fieldV2Timeseries = 5

	fieldV2SeriesLabelsRefs = 1
	fieldV2SeriesSamples    = 2
	fieldV2SeriesHistograms = 3
	fieldV2SeriesExemplars  = 4
	fieldV2SeriesMetadata   = 5

	fieldV2ExemplarLabelsRefs = 1
	fieldV2ExemplarValue      = 2
	fieldV2ExemplarTimestamp  = 3

	fieldV2MetadataType    = 1
	fieldV2MetadataHelpRef = 3
	fieldV2MetadataUnitRef = 4

	fieldHistogramCountInt       = 1
	fieldHistogramCountFloat     = 2
	fieldHistogramSum            = 3
	fieldHistogramSchema         = 4
	fieldHistogramZeroThreshold  = 5
	fieldHistogramZeroCountInt   = 6
	fieldHistogramZeroCountFloat = 7
	fieldHistogramNegativeSpans  = 8
	fieldHistogramNegativeDeltas = 9
	fieldHistogramNegativeCounts = 10
	fieldHistogramPositiveSpans  = 11
	fieldHistogramPositiveDeltas = 12
	fieldHistogramPositiveCounts = 13
	fieldHistogramResetHint      = 14
	fieldHistogramTimestamp      = 15
	fieldHistogramCustomValues   = 16

	fieldSpanOffset = 1
	fieldSpanLength = 2
)

// Errors of a remote-write 2.0 request that is valid protobuf but breaks
// the specification. UnmarshalV2 wraps them with the series (or exemplar)
// and the offending values.
var (
	// ErrV2FirstSymbol is a symbols table that does not start with the
	// empty string, or is empty although the request has series.
	ErrV2FirstSymbol = errors.New("symbols[0] must be the empty string")
	// ErrV2SymbolRef is a reference past the end of the symbols table.
	ErrV2SymbolRef = errors.New("symbol reference outside the symbols table")
	// ErrV2OddLabelRefs is a labels_refs list that is not name-value pairs.
	ErrV2OddLabelRefs = errors.New("labels_refs has an odd length")
	// ErrV2ReservedField is a top-level field 1, 2 or 3: reserved in
	// io.prometheus.write.v2.Request, and what a remote-write 1.0
	// prometheus.WriteRequest sent with the 2.0 content type looks like.
	ErrV2ReservedField = errors.New("reserved field of io.prometheus.write.v2.Request (a remote-write 1.0 prometheus.WriteRequest sent as 2.0?)")
)

// UnmarshalV2 decodes a remote-write 2.0 io.prometheus.write.v2.Request,
// snappy-decompressed, into req: the same form Unmarshal gives a 1.0
// request, so that the rest of the write path need not know which version
// arrived. Labels and exemplar labels are resolved from the symbols table;
// native histograms (integer and float) and exemplars become their prompb
// counterparts; the metadata of each series becomes a prompb.MetricMetadata
// whose MetricFamilyName is the series' __name__, each distinct entry once
// per request (a series without __name__ or with empty metadata adds none).
// Start timestamps, which 1.0 cannot carry, are dropped. The samples,
// histograms and exemplars written are counted from req.Timeseries.
//
// Every string in req, metadata and exemplar labels included, points into
// buf (the symbols table is not copied), and the labels, samples,
// histograms and exemplars of all series share one array each, as with
// Unmarshal: buf must outlive req and never change, and a string kept
// beyond the request must be cloned. Histogram spans and buckets are
// allocated per histogram.
//
// The request is checked as far as decoding needs: symbols[0] must be the
// empty string, every reference must fall inside the symbols table and
// labels_refs must have even length, or the error wraps ErrV2FirstSymbol,
// ErrV2SymbolRef or ErrV2OddLabelRefs; the fields reserved for 1.0's
// messages (1 to 3) are refused with ErrV2ReservedField, so that a 1.0
// request sent as 2.0 is not taken for an empty one. What the series mean
// (a __name__, sorted and unique labels, samples and histograms not both
// present) is left to validation, as for 1.0. Unknown fields are skipped.
// On error, req holds an unspecified part of the request.
func UnmarshalV2(buf []byte, req *prompb.WriteRequest) error {
	var a ArenaV2
	return a.Unmarshal(buf, req)
}

// ArenaV2 is the memory that decoded remote-write 2.0 requests live in: the
// symbols table, the series and their labels, samples, histograms and
// exemplars, and the metadata. Decoding the next request into the same
// ArenaV2 reuses it instead of allocating anew; what an earlier Unmarshal
// returned is then overwritten, so the caller must be done with it. The
// zero ArenaV2 is ready to use; an ArenaV2 is not safe for concurrent use.
type ArenaV2 struct {
	symbols    []string
	series     []prompb.TimeSeries
	labels     []prompb.Label
	exLabels   []prompb.Label // exemplars' labels, apart so each series' labels stay contiguous
	samples    []prompb.Sample
	histograms []prompb.Histogram
	exemplars  []prompb.Exemplar
	metadata   []prompb.MetricMetadata
	seen       map[metadataKey]struct{}
}

// metadataKey is a prompb.MetricMetadata, which is not comparable.
type metadataKey struct {
	typ                prompb.MetricMetadata_MetricType
	family, help, unit string
}

// Unmarshal is UnmarshalV2 into the arena's memory: req.Timeseries and
// req.Metadata are set to the arena's slices.
func (a *ArenaV2) Unmarshal(buf []byte, req *prompb.WriteRequest) error {
	c, err := countV2(buf)
	if err != nil {
		return err
	}
	a.symbols = grow(a.symbols, c.symbols)
	req.Timeseries = grow(a.series, c.series)
	req.Metadata = a.metadata[:0]
	a.labels = grow(a.labels, c.labelRefs/2)
	a.exLabels = grow(a.exLabels, c.exemplarRefs/2)
	a.samples = grow(a.samples, c.samples)
	a.histograms = grow(a.histograms, c.histograms)
	a.exemplars = grow(a.exemplars, c.exemplars)
	clear(a.seen)
	// Keep what was grown for the next request, whatever happens below.
	defer func() {
		a.series, a.metadata = req.Timeseries[:0], req.Metadata[:0]
	}()

	// The symbols first: protobuf lets them come after the series.
	for b := buf; len(b) > 0; {
		num, typ, n := consumeTag(b)
		b = b[n:] // countV2 has checked the framing
		if num == fieldV2Symbols && typ == protowire.BytesType {
			v, n := consumeBytes(b)
			b = b[n:]
			a.symbols = append(a.symbols, yoloString(v))
			continue
		}
		b = b[protowire.ConsumeFieldValue(num, typ, b):]
	}
	switch {
	case len(a.symbols) > 0 && a.symbols[0] != "":
		return fmt.Errorf("%w, not %q", ErrV2FirstSymbol, truncate(a.symbols[0]))
	case len(a.symbols) == 0 && c.series > 0:
		return fmt.Errorf("%w: the request has series but no symbols", ErrV2FirstSymbol)
	}

	// The metadata of the previous series, most often the same.
	var last v2Metadata
	lastFamily := ""
	for len(buf) > 0 {
		num, typ, n := consumeTag(buf)
		buf = buf[n:]
		if num != fieldV2Timeseries || typ != protowire.BytesType {
			buf = buf[protowire.ConsumeFieldValue(num, typ, buf):]
			continue
		}
		b, n := consumeBytes(buf)
		buf = buf[n:]
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{})
		ts := &req.Timeseries[len(req.Timeseries)-1]
		md, err := a.decodeSeries(b, ts)
		if err != nil {
			return fmt.Errorf("series %d: %w", len(req.Timeseries)-1, err)
		}
		if !md.set {
			continue
		}
		family := ""
		for _, l := range ts.Labels {
			if l.Name == "__name__" {
				family = l.Value
				break
			}
		}
		if family == "" || md == last && family == lastFamily {
			continue
		}
		last, lastFamily = md, family
		k := metadataKey{typ: prompb.MetricMetadata_MetricType(int32(md.typ)), family: family, help: a.symbols[md.help], unit: a.symbols[md.unit]}
		if k.typ == 0 && k.help == "" && k.unit == "" {
			continue
		}
		if a.seen == nil {
			a.seen = map[metadataKey]struct{}{}
		}
		if _, ok := a.seen[k]; !ok {
			a.seen[k] = struct{}{}
			req.Metadata = append(req.Metadata, prompb.MetricMetadata{Type: k.typ, MetricFamilyName: k.family, Help: k.help, Unit: k.unit})
		}
	}
	return nil
}

// v2Counts are the sizes of a request's arenas.
type v2Counts struct {
	symbols, series, labelRefs, exemplarRefs, samples, histograms, exemplars int
}

// countV2 walks buf once to size the arenas, checking the framing of the
// request and of its series on the way, so that the decoding pass need not.
func countV2(buf []byte) (v2Counts, error) {
	var c v2Counts
	for len(buf) > 0 {
		num, typ, n := consumeTag(buf)
		if n < 0 {
			return c, protowire.ParseError(n)
		}
		buf = buf[n:]
		if num >= 1 && num <= 3 {
			return c, fmt.Errorf("field %d: %w", num, ErrV2ReservedField)
		}
		if typ != protowire.BytesType || (num != fieldV2Symbols && num != fieldV2Timeseries) {
			n := protowire.ConsumeFieldValue(num, typ, buf)
			if n < 0 {
				return c, protowire.ParseError(n)
			}
			buf = buf[n:]
			continue
		}
		b, n := consumeBytes(buf)
		if n < 0 {
			return c, protowire.ParseError(n)
		}
		buf = buf[n:]
		if num == fieldV2Symbols {
			c.symbols++
			continue
		}
		if err := countSeriesV2(b, &c); err != nil {
			return c, fmt.Errorf("series %d: %w", c.series, err)
		}
		c.series++
	}
	return c, nil
}

func countSeriesV2(b []byte, c *v2Counts) error {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			if num == fieldV2SeriesLabelsRefs && typ == protowire.VarintType {
				c.labelRefs++
			}
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := consumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch num {
		case fieldV2SeriesLabelsRefs:
			c.labelRefs += countVarints(v)
		case fieldV2SeriesSamples:
			c.samples++
		case fieldV2SeriesHistograms:
			c.histograms++
		case fieldV2SeriesExemplars:
			c.exemplars++
			refs, err := countExemplarRefs(v)
			if err != nil {
				return fmt.Errorf("exemplar: %w", err)
			}
			c.exemplarRefs += refs
		}
	}
	return nil
}

func countExemplarRefs(b []byte) (int, error) {
	refs := 0
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
		if num == fieldV2ExemplarLabelsRefs {
			switch typ {
			case protowire.BytesType:
				v, n := consumeBytes(b)
				if n < 0 {
					return 0, protowire.ParseError(n)
				}
				refs += countVarints(v)
				b = b[n:]
				continue
			case protowire.VarintType:
				refs++
			}
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return refs, nil
}

// countVarints is the number of varints in a well-formed packed field.
func countVarints(b []byte) int {
	n := 0
	for _, c := range b {
		if c < 0x80 {
			n++
		}
	}
	return n
}

// decodeSeries decodes series b into ts, and returns its metadata, whose
// references it has checked.
func (a *ArenaV2) decodeSeries(b []byte, ts *prompb.TimeSeries) (v2Metadata, error) {
	var md v2Metadata
	firstLabel, firstSample, firstHistogram, firstExemplar := len(a.labels), len(a.samples), len(a.histograms), len(a.exemplars)
	refs := labelRefs{symbols: a.symbols, labels: a.labels}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		b = b[n:] // countV2 has checked the framing of the series' fields
		if typ != protowire.BytesType {
			if num == fieldV2SeriesLabelsRefs && typ == protowire.VarintType {
				v, n := protowire.ConsumeVarint(b)
				if n < 0 {
					return md, protowire.ParseError(n)
				}
				b = b[n:]
				if err := refs.add(v); err != nil {
					return md, err
				}
				continue
			}
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, n := consumeBytes(b)
		b = b[n:]
		switch num {
		case fieldV2SeriesLabelsRefs:
			if err := refs.addPacked(v); err != nil {
				return md, err
			}
		case fieldV2SeriesSamples:
			s, err := decodeSample(v)
			if err != nil {
				return md, fmt.Errorf("sample: %w", err)
			}
			a.samples = append(a.samples, s)
		case fieldV2SeriesHistograms:
			a.histograms = append(a.histograms, prompb.Histogram{})
			if err := decodeHistogram(v, &a.histograms[len(a.histograms)-1]); err != nil {
				return md, fmt.Errorf("histogram %d: %w", len(a.histograms)-1-firstHistogram, err)
			}
		case fieldV2SeriesExemplars:
			a.exemplars = append(a.exemplars, prompb.Exemplar{})
			if err := a.decodeExemplar(v, &a.exemplars[len(a.exemplars)-1]); err != nil {
				return md, fmt.Errorf("exemplar %d: %w", len(a.exemplars)-1-firstExemplar, err)
			}
		case fieldV2SeriesMetadata:
			if err := md.merge(v); err != nil {
				return md, fmt.Errorf("metadata: %w", err)
			}
		}
	}
	a.labels = refs.labels
	if refs.pending {
		return md, fmt.Errorf("%w (%d refs)", ErrV2OddLabelRefs, 2*(len(a.labels)-firstLabel)+1)
	}
	if md.set {
		if md.help >= uint64(len(a.symbols)) {
			return md, fmt.Errorf("metadata help_ref: %w: %d, table size %d", ErrV2SymbolRef, md.help, len(a.symbols))
		}
		if md.unit >= uint64(len(a.symbols)) {
			return md, fmt.Errorf("metadata unit_ref: %w: %d, table size %d", ErrV2SymbolRef, md.unit, len(a.symbols))
		}
	}
	// Full slice expressions: appending to one series' slice must never
	// overwrite the next series' elements.
	if len(a.labels) > firstLabel {
		ts.Labels = a.labels[firstLabel:len(a.labels):len(a.labels)]
	}
	if len(a.samples) > firstSample {
		ts.Samples = a.samples[firstSample:len(a.samples):len(a.samples)]
	}
	if len(a.histograms) > firstHistogram {
		ts.Histograms = a.histograms[firstHistogram:len(a.histograms):len(a.histograms)]
	}
	if len(a.exemplars) > firstExemplar {
		ts.Exemplars = a.exemplars[firstExemplar:len(a.exemplars):len(a.exemplars)]
	}
	return md, nil
}

// labelRefs turns labels_refs into labels, pair by pair: a list may come
// in several packed (or unpacked) pieces.
type labelRefs struct {
	symbols []string
	labels  []prompb.Label
	pending bool   // name seen, value not yet
	name    uint64 // the name, if pending
}

func (r *labelRefs) add(ref uint64) error {
	if ref >= uint64(len(r.symbols)) {
		return fmt.Errorf("labels_refs: %w: %d, table size %d", ErrV2SymbolRef, ref, len(r.symbols))
	}
	if !r.pending {
		r.name, r.pending = ref, true
		return nil
	}
	r.labels = append(r.labels, prompb.Label{Name: r.symbols[r.name], Value: r.symbols[ref]})
	r.pending = false
	return nil
}

func (r *labelRefs) addPacked(b []byte) error {
	for len(b) > 0 {
		var ref uint64
		if b[0] < 0x80 {
			ref, b = uint64(b[0]), b[1:]
		} else {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("labels_refs: %w", protowire.ParseError(n))
			}
			ref, b = v, b[n:]
		}
		if err := r.add(ref); err != nil {
			return err
		}
	}
	return nil
}

func (a *ArenaV2) decodeExemplar(b []byte, e *prompb.Exemplar) error {
	first := len(a.exLabels)
	refs := labelRefs{symbols: a.symbols, labels: a.exLabels}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == fieldV2ExemplarLabelsRefs && typ == protowire.BytesType:
			v, n := consumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			if err := refs.addPacked(v); err != nil {
				return err
			}
			continue
		case num == fieldV2ExemplarLabelsRefs && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			if err := refs.add(v); err != nil {
				return err
			}
			continue
		case num == fieldV2ExemplarValue && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			e.Value = math.Float64frombits(v)
			continue
		case num == fieldV2ExemplarTimestamp && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			e.Timestamp = int64(v)
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	a.exLabels = refs.labels
	if refs.pending {
		return fmt.Errorf("%w (%d refs)", ErrV2OddLabelRefs, 2*(len(a.exLabels)-first)+1)
	}
	if len(a.exLabels) > first {
		e.Labels = a.exLabels[first:len(a.exLabels):len(a.exLabels)]
	}
	return nil
}

// v2Metadata is what a Metadata message sets; a message field seen twice
// is merged, later values winning.
type v2Metadata struct {
	typ, help, unit uint64
	set             bool // the series has metadata
}

// merge decodes Metadata message b into md.
func (md *v2Metadata) merge(b []byte) error {
	md.set = true
	for len(b) > 0 {
		num, wt, n := consumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if wt != protowire.VarintType || (num != fieldV2MetadataType && num != fieldV2MetadataHelpRef && num != fieldV2MetadataUnitRef) {
			n := protowire.ConsumeFieldValue(num, wt, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch num {
		case fieldV2MetadataType:
			md.typ = v
		case fieldV2MetadataHelpRef:
			md.help = uint64(uint32(v)) // uint32 in the proto
		case fieldV2MetadataUnitRef:
			md.unit = uint64(uint32(v))
		}
	}
	return nil
}

// decodeHistogram decodes a 2.0 Histogram, which is a 1.0 Histogram plus a
// start timestamp, dropped here.
func decodeHistogram(b []byte, h *prompb.Histogram) error {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var err error
		switch {
		case typ == protowire.VarintType && (num == fieldHistogramCountInt || num == fieldHistogramSchema ||
			num == fieldHistogramZeroCountInt || num == fieldHistogramResetHint || num == fieldHistogramTimestamp):
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			switch num {
			case fieldHistogramCountInt:
				h.Count = &prompb.Histogram_CountInt{CountInt: v}
			case fieldHistogramSchema:
				h.Schema = zigzag32(v)
			case fieldHistogramZeroCountInt:
				h.ZeroCount = &prompb.Histogram_ZeroCountInt{ZeroCountInt: v}
			case fieldHistogramResetHint:
				h.ResetHint = prompb.Histogram_ResetHint(int32(v))
			case fieldHistogramTimestamp:
				h.Timestamp = int64(v)
			}
			continue
		case typ == protowire.Fixed64Type && (num == fieldHistogramCountFloat || num == fieldHistogramSum ||
			num == fieldHistogramZeroThreshold || num == fieldHistogramZeroCountFloat):
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			f := math.Float64frombits(v)
			switch num {
			case fieldHistogramCountFloat:
				h.Count = &prompb.Histogram_CountFloat{CountFloat: f}
			case fieldHistogramSum:
				h.Sum = f
			case fieldHistogramZeroThreshold:
				h.ZeroThreshold = f
			case fieldHistogramZeroCountFloat:
				h.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: f}
			}
			continue
		case typ == protowire.BytesType && (num == fieldHistogramNegativeSpans || num == fieldHistogramPositiveSpans):
			v, n := consumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			s, err := decodeSpan(v)
			if err != nil {
				return fmt.Errorf("span: %w", err)
			}
			if num == fieldHistogramNegativeSpans {
				h.NegativeSpans = append(h.NegativeSpans, s)
			} else {
				h.PositiveSpans = append(h.PositiveSpans, s)
			}
			continue
		case num == fieldHistogramNegativeDeltas:
			h.NegativeDeltas, b, err = appendSint64s(h.NegativeDeltas, typ, b)
		case num == fieldHistogramPositiveDeltas:
			h.PositiveDeltas, b, err = appendSint64s(h.PositiveDeltas, typ, b)
		case num == fieldHistogramNegativeCounts:
			h.NegativeCounts, b, err = appendDoubles(h.NegativeCounts, typ, b)
		case num == fieldHistogramPositiveCounts:
			h.PositiveCounts, b, err = appendDoubles(h.PositiveCounts, typ, b)
		case num == fieldHistogramCustomValues:
			h.CustomValues, b, err = appendDoubles(h.CustomValues, typ, b)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
		}
		if err != nil {
			return fmt.Errorf("field %d: %w", num, err)
		}
	}
	return nil
}

func decodeSpan(b []byte) (prompb.BucketSpan, error) {
	var s prompb.BucketSpan
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return s, protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.VarintType && (num == fieldSpanOffset || num == fieldSpanLength) {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return s, protowire.ParseError(n)
			}
			b = b[n:]
			if num == fieldSpanOffset {
				s.Offset = zigzag32(v)
			} else {
				s.Length = uint32(v)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return s, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return s, nil
}

// zigzag32 decodes a sint32 from its varint, truncated to 32 bits as the
// generated code does.
func zigzag32(v uint64) int32 {
	u := uint32(v)
	return int32(u>>1) ^ -int32(u&1)
}

// appendSint64s appends a repeated sint64 field's value, packed or not, to
// s and returns it with the rest of b.
func appendSint64s(s []int64, typ protowire.Type, b []byte) ([]int64, []byte, error) {
	switch typ {
	case protowire.VarintType:
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return s, nil, protowire.ParseError(n)
		}
		return append(s, protowire.DecodeZigZag(v)), b[n:], nil
	case protowire.BytesType:
		v, n := consumeBytes(b)
		if n < 0 {
			return s, nil, protowire.ParseError(n)
		}
		b = b[n:]
		if n := countVarints(v); s == nil && n > 0 {
			s = make([]int64, 0, n)
		}
		for len(v) > 0 {
			x, n := protowire.ConsumeVarint(v)
			if n < 0 {
				return s, nil, protowire.ParseError(n)
			}
			v = v[n:]
			s = append(s, protowire.DecodeZigZag(x))
		}
		return s, b, nil
	}
	return s, nil, fmt.Errorf("wire type %d for repeated sint64", typ)
}

// appendDoubles appends a repeated double field's value, packed or not, to
// s and returns it with the rest of b.
func appendDoubles(s []float64, typ protowire.Type, b []byte) ([]float64, []byte, error) {
	switch typ {
	case protowire.Fixed64Type:
		v, n := protowire.ConsumeFixed64(b)
		if n < 0 {
			return s, nil, protowire.ParseError(n)
		}
		return append(s, math.Float64frombits(v)), b[n:], nil
	case protowire.BytesType:
		v, n := consumeBytes(b)
		if n < 0 {
			return s, nil, protowire.ParseError(n)
		}
		b = b[n:]
		if len(v)%8 != 0 {
			return s, nil, fmt.Errorf("packed doubles of %d bytes", len(v))
		}
		if s == nil && len(v) > 0 {
			s = make([]float64, 0, len(v)/8)
		}
		for ; len(v) > 0; v = v[8:] {
			s = append(s, math.Float64frombits(binary.LittleEndian.Uint64(v)))
		}
		return s, b, nil
	}
	return s, nil, fmt.Errorf("wire type %d for repeated double", typ)
}

// truncate shortens s for an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
