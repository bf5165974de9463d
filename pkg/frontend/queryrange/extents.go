package queryrange

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
)

// extent is a cached answer to a query over the evaluation timestamps
// [start, end]: every sample at those timestamps, of successful answers
// without warnings or infos.
type extent struct {
	start, end int64
	resp       *Response
}

// extentsFormat starts every encoded value; change it with the format.
const extentsFormat byte = 1

// encodeExtents writes extents compactly, snappy-compressed: labels as
// strings, timestamps as deltas, each float as the XOR with the series'
// previous one without its trailing zero bits (Gorilla's idea, bytewise),
// histograms as plain numbers. The error is that of decoding an extent's
// series (Response.Result).
func encodeExtents(exts []extent) ([]byte, error) {
	sss := make([][]series, len(exts))
	size := 16
	for i, e := range exts {
		ss, err := e.resp.series()
		if err != nil {
			return nil, err
		}
		sss[i] = ss
		size += 32 + extentsSizeHint(ss)
	}
	// One buffer of about the right size: growing it by doubling copies
	// it over and over.
	b := make([]byte, 0, size)
	b = append(b, extentsFormat)
	b = binary.AppendUvarint(b, uint64(len(exts)))
	for i, e := range exts {
		ss := sss[i]
		b = binary.AppendVarint(b, e.start)
		b = binary.AppendVarint(b, e.end-e.start)
		b = binary.AppendUvarint(b, uint64(len(ss)))
		for _, s := range ss {
			b = appendSeries(b, s)
		}
	}
	return snappy.Encode(nil, b), nil
}

// extentsSizeHint is about the size of ss encoded: labels, and a few bytes
// for each float (timestamp delta and XOR), more for a histogram.
func extentsSizeHint(ss []series) int {
	n := 0
	for _, s := range ss {
		n += 8 + 8*len(s.floats) + 64*len(s.hists)
		for _, l := range s.labels {
			n += len(l.name) + len(l.value) + 2
		}
	}
	return n
}

// appendSeries writes a series, its labels sorted by name (which older
// values did not always do: decoding sorts them).
func appendSeries(b []byte, s series) []byte {
	b = binary.AppendUvarint(b, uint64(len(s.labels)))
	for _, l := range s.labels {
		b = appendString(b, l.name)
		b = appendString(b, l.value)
	}
	b = binary.AppendUvarint(b, uint64(len(s.floats)))
	var prevT int64
	var prevV uint64
	for _, p := range s.floats {
		b = binary.AppendVarint(b, int64(p.Timestamp)-prevT)
		prevT = int64(p.Timestamp)
		v := math.Float64bits(float64(p.Value))
		b = appendXOR(b, v^prevV)
		prevV = v
	}
	b = binary.AppendUvarint(b, uint64(len(s.hists)))
	prevT = 0
	for _, p := range s.hists {
		b = binary.AppendVarint(b, int64(p.Timestamp)-prevT)
		prevT = int64(p.Timestamp)
		h := p.Histogram
		b = appendFloat64(b, float64(h.Count))
		b = appendFloat64(b, float64(h.Sum))
		b = binary.AppendUvarint(b, uint64(len(h.Buckets)))
		for _, bk := range h.Buckets {
			b = binary.AppendVarint(b, int64(bk.Boundaries))
			b = appendFloat64(b, float64(bk.Lower))
			b = appendFloat64(b, float64(bk.Upper))
			b = appendFloat64(b, float64(bk.Count))
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendXOR writes 0 for x == 0, else the number of trailing zero bits
// plus one, then the rest of x.
func appendXOR(b []byte, x uint64) []byte {
	if x == 0 {
		return append(b, 0)
	}
	tz := bits.TrailingZeros64(x)
	b = append(b, byte(tz+1))
	return binary.AppendUvarint(b, x>>tz)
}

func appendFloat64(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

// decodeExtents reads what encodeExtents wrote. The label strings of the
// series point into the decompressed value.
func decodeExtents(data []byte) ([]extent, error) {
	raw, err := snappy.Decode(nil, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	d := decoder{b: raw}
	if d.byte() != extentsFormat {
		return nil, fmt.Errorf("%w: unknown format", errCorrupt)
	}
	n := d.count(3)
	exts := make([]extent, 0, n)
	for range n {
		start := d.varint()
		e := extent{start: start, end: start + d.varint()}
		ss := make([]series, d.count(3))
		for i := range ss {
			ss[i] = d.series()
		}
		e.resp = &Response{Status: statusSuccess, Data: Data{ResultType: model.ValMatrix}, lazy: givenSeries(ss)}
		exts = append(exts, e)
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, d.err)
	}
	return exts, nil
}

type decoder struct {
	b   []byte
	err error
	// labels is a buffer for one series' labels; arena holds them all.
	labels []labelPair
	arena  arena
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail(errShort)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items of at least minSize bytes each, refusing
// one the remaining bytes cannot hold (a corrupt count must not allocate).
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minSize)+1 {
		d.fail(errors.New("count beyond the data"))
		return 0
	}
	return int(n)
}

// string returns a string pointing into the value decoded.
func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail(errShort)
		return ""
	}
	s := bytesString(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) float64() float64 {
	if len(d.b) < 8 {
		d.fail(errShort)
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return math.Float64frombits(v)
}

// floats reads len(dst) floats (timestamp deltas and XORs, see
// appendSeries) into dst, in a loop of its own: most of a value is floats.
func (d *decoder) floats(dst []model.SamplePair) {
	b := d.b
	var t int64
	var v uint64
	for i := range dst {
		dt, n := binary.Varint(b)
		if n <= 0 || n >= len(b) {
			d.fail(errShort)
			return
		}
		tz := b[n]
		b = b[n+1:]
		if tz > 64 {
			d.fail(errors.New("bad float"))
			return
		}
		if tz > 0 {
			x, n := binary.Uvarint(b)
			if n <= 0 {
				d.fail(errShort)
				return
			}
			b = b[n:]
			v ^= x << (tz - 1)
		}
		t += dt
		dst[i] = model.SamplePair{Timestamp: model.Time(t), Value: model.SampleValue(math.Float64frombits(v))}
	}
	d.b = b
}

func (d *decoder) series() series {
	var s series
	nl := d.count(2)
	d.labels = d.labels[:0]
	for range nl {
		n := d.string()
		d.labels = append(d.labels, labelPair{name: n, value: d.string()})
	}
	s.labels = d.arena.labels(normalizeLabels(d.labels))
	if nf := d.count(2); nf > 0 {
		s.floats = d.arena.floats(nf)
		d.floats(s.floats)
	}
	if nh := d.count(17); nh > 0 {
		s.hists = make([]model.SampleHistogramPair, nh)
		var t int64
		for i := range s.hists {
			t += d.varint()
			h := &model.SampleHistogram{Count: model.FloatString(d.float64()), Sum: model.FloatString(d.float64())}
			if nb := d.count(25); nb > 0 {
				h.Buckets = make(model.HistogramBuckets, nb)
				for j := range h.Buckets {
					h.Buckets[j] = &model.HistogramBucket{
						Boundaries: int32(d.varint()),
						Lower:      model.FloatString(d.float64()),
						Upper:      model.FloatString(d.float64()),
						Count:      model.FloatString(d.float64()),
					}
				}
			}
			s.hists[i] = model.SampleHistogramPair{Timestamp: model.Time(t), Histogram: h}
		}
	}
	return s
}
