package queryrange

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// This file reads Prometheus's JSON answers to range queries, the parts
// the frontend merges, about 9 times faster and with 250 times fewer
// allocations than encoding/json with model.Matrix's decoders (which
// decode each sample through encoding/json again). Unknown fields are skipped; anything that is not
// valid JSON of the expected shape is an error. Strings are taken as
// they are, invalid UTF-8 included (Prometheus writes label values raw).

// decodeJSONResponse parses body into a Response and its series, whose
// label strings point into body, which must not change afterwards.
func decodeJSONResponse(body []byte) (*Response, []series, error) {
	d := &jsonDecoder{b: body}
	resp, err := decodeJSON(d)
	return resp, d.ss, err
}

// skimJSONResponse parses body into a Response but for the series, which
// it only checks to be an array of well-nested JSON (see skipNested) and
// leaves for decodeJSONResponse when needed. It reports whether there are
// any.
func skimJSONResponse(body []byte) (resp *Response, series bool, err error) {
	d := &jsonDecoder{b: body, skim: true}
	resp, err = decodeJSON(d)
	return resp, d.hasSeries, err
}

func decodeJSON(d *jsonDecoder) (*Response, error) {
	resp := d.response()
	if d.err == nil {
		d.ws()
		if d.i != len(d.b) {
			d.fail("data after the JSON value")
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return resp, nil
}

type jsonDecoder struct {
	b   []byte
	i   int
	err error
	// ss are the series decoded, nil if the result was absent or null;
	// arena holds their labels and floats.
	ss    []series
	arena arena
	// skim skips the series (skimJSONResponse); hasSeries is whether it
	// skipped any.
	skim      bool
	hasSeries bool
	// labels and floats are buffers for one series.
	labels []labelPair
	floats []model.SamplePair
}

func (d *jsonDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("offset %d: %s", d.i, fmt.Sprintf(format, args...))
	}
	d.i = len(d.b)
}

func (d *jsonDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, or 0 at the end.
func (d *jsonDecoder) peek() byte {
	d.ws()
	if d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

func (d *jsonDecoder) expect(c byte) {
	if d.peek() != c {
		d.unexpected(fmt.Sprintf("want %q", c))
		return
	}
	d.i++
}

func (d *jsonDecoder) unexpected(context string) {
	if d.peek() == 0 && d.i >= len(d.b) {
		d.fail("unexpected end of input")
		return
	}
	d.fail("unexpected %q %s", d.b[d.i], context)
}

// null consumes a null if there is one.
func (d *jsonDecoder) null() bool {
	if d.peek() == 'n' && len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// object calls field for each key of an object, positioned at its value.
func (d *jsonDecoder) object(field func(key []byte)) {
	d.expect('{')
	if d.peek() == '}' {
		d.i++
		return
	}
	for d.err == nil {
		key := d.rawString()
		d.expect(':')
		if d.err != nil {
			return
		}
		field(key)
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return
		default:
			d.unexpected("in object")
		}
	}
}

// array calls elem for each element of an array, positioned at it.
func (d *jsonDecoder) array(elem func()) {
	d.expect('[')
	if d.peek() == ']' {
		d.i++
		return
	}
	for d.err == nil {
		elem()
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return
		default:
			d.unexpected("in array")
		}
	}
}

// rawString returns the contents of a string, unescaped: a slice of the
// body or, if the string has escapes, a buffer of its own. Neither is ever
// written to.
func (d *jsonDecoder) rawString() []byte {
	d.expect('"')
	if d.err != nil {
		return nil
	}
	start, i := d.i, d.i
	for i < len(d.b) && skimPlainInString[d.b[i]] {
		i++
	}
	d.i = i
	switch {
	case i == len(d.b):
		d.fail("unexpected end of input")
		return nil
	case d.b[i] == '"':
		d.i++
		return d.b[start:i]
	case d.b[i] == '\\':
		return d.escapedString(start)
	default:
		d.fail("control character in string")
		return nil
	}
}

func (d *jsonDecoder) escapedString(start int) []byte {
	out := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return out
		case c < 0x20:
			d.fail("control character in string")
			return nil
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			break
		}
		d.i += 2
		switch e := d.b[d.i-1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := d.hex4()
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
					save := d.i
					d.i += 2
					r2 = d.hex4()
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
					} else {
						d.i = save
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			d.fail("invalid escape %q", e)
			return nil
		}
	}
	d.fail("unexpected end of input")
	return nil
}

func (d *jsonDecoder) hex4() rune {
	if len(d.b)-d.i < 4 {
		d.fail("short \\u escape")
		return 0
	}
	v, err := strconv.ParseUint(string(d.b[d.i:d.i+4]), 16, 16)
	if err != nil {
		d.fail("invalid \\u escape")
		return 0
	}
	d.i += 4
	return rune(v)
}

func (d *jsonDecoder) string() string {
	return string(d.rawString())
}

// label returns a label name or value, pointing into the body (or, if it
// has escapes, into a buffer of its own): rawString never writes to a
// slice it returned.
func (d *jsonDecoder) label() string {
	return bytesString(d.rawString())
}

func (d *jsonDecoder) strings() []string {
	if d.null() {
		return nil
	}
	ss := []string{}
	d.array(func() { ss = append(ss, d.string()) })
	return ss
}

// skip skips any value.
func (d *jsonDecoder) skip() {
	switch c := d.peek(); {
	case c == '{':
		d.object(func([]byte) { d.skip() })
	case c == '[':
		d.array(d.skip)
	case c == '"':
		d.rawString()
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
				d.i += len(lit)
				return
			}
		}
		d.fail("invalid literal")
	default:
		start := d.i
		for d.i < len(d.b) && (d.b[d.i] == '-' || d.b[d.i] == '+' || d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E' || d.b[d.i] >= '0' && d.b[d.i] <= '9') {
			d.i++
		}
		if _, err := strconv.ParseFloat(string(d.b[start:d.i]), 64); err != nil {
			d.i = start
			d.fail("invalid value")
		}
	}
}

func (d *jsonDecoder) response() *Response {
	resp := &Response{}
	if d.null() {
		d.fail("null response")
		return nil
	}
	d.object(func(key []byte) {
		switch string(key) {
		case "status":
			resp.Status = d.string()
		case "data":
			d.data(&resp.Data)
		case "errorType":
			resp.ErrorType = d.string()
		case "error":
			resp.Error = d.string()
		case "warnings":
			resp.Warnings = d.strings()
		case "infos":
			resp.Infos = d.strings()
		default:
			d.skip()
		}
	})
	return resp
}

func (d *jsonDecoder) data(data *Data) {
	if d.null() {
		return
	}
	d.object(func(key []byte) {
		switch string(key) {
		case "resultType":
			switch t := d.rawString(); string(t) {
			case "matrix":
				data.ResultType = model.ValMatrix
			case "vector":
				data.ResultType = model.ValVector
			case "scalar":
				data.ResultType = model.ValScalar
			case "string":
				data.ResultType = model.ValString
			default:
				d.fail("unknown result type %q", t)
			}
		case "result":
			if data.ResultType != model.ValMatrix && data.ResultType != model.ValNone {
				d.skip()
				return
			}
			if d.null() {
				return
			}
			if d.skim {
				d.skipSeries()
				return
			}
			d.ss = []series{}
			d.array(func() {
				if d.null() {
					d.fail("null series")
					return
				}
				d.ss = append(d.ss, d.series())
			})
		default:
			d.skip()
		}
	})
}

// series reads one series. Its labels are sorted by name, the last kept
// of labels with the same name, as decoding into a model.Metric would.
func (d *jsonDecoder) series() series {
	var s series
	d.labels, d.floats = d.labels[:0], d.floats[:0]
	d.object(func(key []byte) {
		switch string(key) {
		case "metric":
			if d.null() {
				return
			}
			d.object(func(name []byte) {
				d.labels = append(d.labels, labelPair{name: bytesString(name), value: d.label()})
			})
		case "values":
			if d.null() {
				return
			}
			d.array(func() {
				var p model.SamplePair
				d.expect('[')
				p.Timestamp = d.timestamp()
				d.expect(',')
				p.Value = model.SampleValue(d.float())
				d.expect(']')
				d.floats = append(d.floats, p)
			})
		case "histograms":
			if d.null() {
				return
			}
			d.array(func() {
				var p model.SampleHistogramPair
				d.expect('[')
				p.Timestamp = d.timestamp()
				d.expect(',')
				p.Histogram = d.histogram()
				d.expect(']')
				s.hists = append(s.hists, p)
			})
		default:
			d.skip()
		}
	})
	s.labels = d.arena.labels(normalizeLabels(d.labels))
	s.floats = d.arena.floats(len(d.floats))
	copy(s.floats, d.floats)
	return s
}

func (d *jsonDecoder) histogram() *model.SampleHistogram {
	if d.null() {
		d.fail("null histogram")
		return nil
	}
	h := &model.SampleHistogram{}
	d.object(func(key []byte) {
		switch string(key) {
		case "count":
			h.Count = model.FloatString(d.float())
		case "sum":
			h.Sum = model.FloatString(d.float())
		case "buckets":
			if d.null() {
				return
			}
			d.array(func() {
				b := &model.HistogramBucket{}
				d.expect('[')
				b.Boundaries = int32(d.integer(-1 << 31))
				d.expect(',')
				b.Lower = model.FloatString(d.float())
				d.expect(',')
				b.Upper = model.FloatString(d.float())
				d.expect(',')
				b.Count = model.FloatString(d.float())
				d.expect(']')
				h.Buckets = append(h.Buckets, b)
			})
		default:
			d.skip()
		}
	})
	return h
}

// float reads a quoted float, NaN and ±Inf included.
func (d *jsonDecoder) float() float64 {
	s := d.rawString()
	if d.err != nil {
		return 0
	}
	if f, ok := parseDecimal(s); ok {
		return f
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil {
		d.fail("invalid sample value %q", s)
		return 0
	}
	return f
}

// parseDecimal parses the most common sample values, -?[0-9]+(\.[0-9]+)?
// of at most 19 digits and less than 2^53 without the point, much faster
// than strconv.ParseFloat and to the same float: that integer and the
// power of ten it is divided by (at most 1e19) are exact floats, and the
// division rounds once, to the nearest float, as ParseFloat does (this is
// its own first path). Other forms it leaves to ParseFloat.
func parseDecimal(s []byte) (float64, bool) {
	i := 0
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		i++
	}
	var m uint64
	digits, point := 0, -1 // point: the digits before the point
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9' && digits < 19:
			m = m*10 + uint64(c-'0')
			digits++
		case c == '.' && point < 0 && digits > 0:
			point = digits
		default:
			return 0, false
		}
	}
	if digits == 0 || point == digits || m >= 1<<53 {
		return 0, false
	}
	f := float64(m)
	if point >= 0 {
		f /= pow10[digits-point]
	}
	if neg {
		f = -f
	}
	return f, true
}

// pow10 are the powers of ten parseDecimal divides by.
var pow10 = [20]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// integer reads an integer of at least min.
func (d *jsonDecoder) integer(min int64) int64 {
	d.ws()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	v, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	if err != nil || v < min || v > -min-1 {
		d.i = start
		d.fail("invalid integer")
		return 0
	}
	return v
}

// timestamp reads seconds with up to three decimals (more are cut, as
// model.Time does) into milliseconds.
func (d *jsonDecoder) timestamp() model.Time {
	d.ws()
	b, start := d.b, d.i
	i := start
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	var ms int64
	digits := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		ms = ms*10 + int64(b[i]-'0')
		digits++
	}
	if digits == 0 || digits > 15 {
		d.fail("invalid timestamp")
		return 0
	}
	ms *= 1000
	if i < len(b) && b[i] == '.' {
		i++
		scale := int64(100)
		fdigits := 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			ms += int64(b[i]-'0') * scale
			scale /= 10
			fdigits++
		}
		if fdigits == 0 {
			d.fail("invalid timestamp")
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		d.fail("invalid timestamp")
		return 0
	}
	d.i = i
	if neg {
		ms = -ms
	}
	return model.Time(ms)
}
