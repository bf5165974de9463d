package queryrange

import (
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// This file writes Responses byte for byte as Prometheus's web/api/v1 does
// (jsoniter with its own encoders for matrices, in json_codec.go and
// util/jsonutil). encoding/json cannot: model.Matrix formats floats with
// 'f' where Prometheus switches to exponents below 1e-6 and from 1e21, and
// it escapes <, > and & in label values, which Prometheus writes as they
// are.

// EncodeResponse returns r as Prometheus's API writes it, or the error of
// decoding its series (Response.Result).
func EncodeResponse(r *Response) ([]byte, error) {
	m, err := r.Result()
	if err != nil {
		return nil, err
	}
	return appendResponse(make([]byte, 0, responseSizeHint(m)), r, m), nil
}

func responseSizeHint(m model.Matrix) int {
	n := 64
	for _, s := range m {
		n += 64 + 32*len(s.Values) + 256*len(s.Histograms)
		for k, v := range s.Metric {
			n += len(k) + len(v) + 6
		}
	}
	return n
}

// appendResponse appends r, with the series m.
func appendResponse(b []byte, r *Response, m model.Matrix) []byte {
	b = append(b, `{"status":`...)
	b = appendHTMLEscapedString(b, r.Status)
	if r.Data.ResultType != model.ValNone || m != nil {
		b = append(b, `,"data":{"resultType":`...)
		b = appendHTMLEscapedString(b, r.Data.ResultType.String())
		b = append(b, `,"result":`...)
		b = appendMatrix(b, m)
		b = append(b, '}')
	}
	if r.ErrorType != "" {
		b = append(b, `,"errorType":`...)
		b = appendHTMLEscapedString(b, r.ErrorType)
	}
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendHTMLEscapedString(b, r.Error)
	}
	b = appendStrings(b, `,"warnings":`, r.Warnings)
	b = appendStrings(b, `,"infos":`, r.Infos)
	return append(b, '}')
}

func appendStrings(b []byte, field string, ss []string) []byte {
	if len(ss) == 0 {
		return b
	}
	b = append(b, field...)
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendHTMLEscapedString(b, s)
	}
	return append(b, ']')
}

func appendMatrix(b []byte, m model.Matrix) []byte {
	b = append(b, '[')
	names := make([]string, 0, 16)
	for i, s := range m {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"metric":`...)
		names = sortedNames(names[:0], s.Metric)
		b = appendMetric(b, s.Metric, names)
		for j, p := range s.Values {
			if j == 0 {
				b = append(b, `,"values":[`...)
			} else {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = appendTimestamp(b, int64(p.Timestamp))
			b = append(b, ',')
			b = appendFloat(b, float64(p.Value))
			b = append(b, ']')
		}
		if len(s.Values) > 0 {
			b = append(b, ']')
		}
		for j, p := range s.Histograms {
			if j == 0 {
				b = append(b, `,"histograms":[`...)
			} else {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = appendTimestamp(b, int64(p.Timestamp))
			b = append(b, ',')
			b = appendHistogram(b, p.Histogram)
			b = append(b, ']')
		}
		if len(s.Histograms) > 0 {
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func sortedNames(dst []string, m model.Metric) []string {
	for k := range m {
		dst = append(dst, string(k))
	}
	slices.Sort(dst)
	return dst
}

// appendMetric writes labels in name order, as labels.Labels holds them.
func appendMetric(b []byte, m model.Metric, names []string) []byte {
	b = append(b, '{')
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRawString(b, n)
		b = append(b, ':')
		b = appendRawString(b, string(m[model.LabelName(n)]))
	}
	return append(b, '}')
}

// appendHistogram is jsonutil.MarshalHistogram: empty buckets are left out.
func appendHistogram(b []byte, h *model.SampleHistogram) []byte {
	if h == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"count":`...)
	b = appendFloat(b, float64(h.Count))
	b = append(b, `,"sum":`...)
	b = appendFloat(b, float64(h.Sum))
	found := false
	for _, bk := range h.Buckets {
		if bk == nil || bk.Count == 0 {
			continue
		}
		if !found {
			b = append(b, `,"buckets":[`...)
			found = true
		} else {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(bk.Boundaries), 10)
		b = append(b, ',')
		b = appendFloat(b, float64(bk.Lower))
		b = append(b, ',')
		b = appendFloat(b, float64(bk.Upper))
		b = append(b, ',')
		b = appendFloat(b, float64(bk.Count))
		b = append(b, ']')
	}
	if found {
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendTimestamp is jsonutil.MarshalTimestamp: seconds with up to three
// decimals, trailing zeros kept.
func appendTimestamp(b []byte, t int64) []byte {
	if t < 0 {
		b = append(b, '-')
		t = -t
	}
	b = strconv.AppendInt(b, t/1000, 10)
	if f := t % 1000; f != 0 {
		b = append(b, '.')
		if f < 100 {
			b = append(b, '0')
		}
		if f < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, f, 10)
	}
	return b
}

// appendFloat is jsonutil.MarshalFloat: a quoted number, NaN and ±Inf
// included.
func appendFloat(b []byte, f float64) []byte {
	b = append(b, '"')
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendRawString is jsoniter's Stream.WriteString, which Prometheus's
// label encoder uses: only quotes, backslashes and control characters are
// escaped; other bytes, invalid UTF-8 included, are written as they are.
func appendRawString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		b = appendEscapedByte(b, c)
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendHTMLEscapedString is jsoniter's string encoding with HTML escaping,
// what its ConfigCompatibleWithStandardLibrary writes for string fields
// (status, error, warnings): like encoding/json, except \b and \f come out
// as \u0008 and \u000c.
func appendHTMLEscapedString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			b = appendEscapedByte(b, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendEscapedByte(b []byte, c byte) []byte {
	switch c {
	case '\\', '"':
		return append(b, '\\', c)
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	default:
		return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
	}
}
