// Package promjson appends the JSON of Prometheus's HTTP API byte for byte
// as Prometheus writes it: sample values and timestamps, label names and
// values, and the envelope's strings. The querier and the query-frontend
// both write answers with it, faster than through reflection.
package promjson

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendStrings appends field and the JSON array of ss, or nothing when ss
// is empty: how Prometheus writes an answer's warnings and infos.
func AppendStrings(b []byte, field string, ss []string) []byte {
	if len(ss) == 0 {
		return b
	}
	b = append(b, field...)
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, s)
	}
	return append(b, ']')
}

// AppendTimestamp is jsonutil.MarshalTimestamp: seconds with up to three
// decimals, trailing zeros kept.
func AppendTimestamp(b []byte, t int64) []byte {
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

// AppendFloat is jsonutil.MarshalFloat: a quoted number, NaN and ±Inf
// included.
func AppendFloat(b []byte, f float64) []byte {
	b = append(b, '"')
	// Whole numbers (counters, gauges of counts) the quick way: 'f' with
	// the shortest precision writes them as integers; -0 is "-0".
	if f == math.Trunc(f) && math.Abs(f) < 1e15 && (f != 0 || !math.Signbit(f)) {
		b = strconv.AppendInt(b, int64(f), 10)
		return append(b, '"')
	}
	// So are other numbers of up to three decimals (quarters,
	// milliseconds, percentages): see appendMillis.
	if m := f * 1000; f != math.Trunc(f) && m == math.Trunc(m) && math.Abs(f) < 1<<43 && m/1000 == f {
		b = appendMillis(b, int64(m))
		return append(b, '"')
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	return append(b, '"')
}

// appendMillis writes m/1000, m not a multiple of 1000, as strconv's
// shortest 'f' format writes the float f that AppendFloat found to be
// m/1000 rounded (m/1000 == f). The decimal m/1000 reads back as f; no
// decimal with fewer digits does, as those near f are multiples of 0.001
// too, and below 2^43 floats are less than 0.001 apart: so m/1000 is the
// shortest decimal that reads back as f, which is what strconv writes.
func appendMillis(b []byte, m int64) []byte {
	if m < 0 {
		b = append(b, '-')
		m = -m
	}
	b = strconv.AppendInt(b, m/1000, 10)
	frac := m % 1000
	b = append(b, '.', byte('0'+frac/100))
	if frac%100 != 0 {
		b = append(b, byte('0'+frac/10%10))
		if frac%10 != 0 {
			b = append(b, byte('0'+frac%10))
		}
	}
	return b
}

// AppendLabelString is jsoniter's Stream.WriteString, which Prometheus's
// label encoder uses: only quotes, backslashes and control characters are
// escaped; other bytes, invalid UTF-8 included, are written as they are.
func AppendLabelString(b []byte, s string) []byte {
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

// AppendString is jsoniter's string encoding with HTML
// escaping, what ConfigCompatibleWithStandardLibrary writes for string
// fields (status, warnings, infos): <, > and & escaped, invalid UTF-8 as
// \ufffd, U+2028 and U+2029 escaped, \b and \f as \u0008 and \u000c.
func AppendString(b []byte, s string) []byte {
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

const hexDigits = "0123456789abcdef"

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
