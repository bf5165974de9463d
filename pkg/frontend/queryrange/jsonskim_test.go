package queryrange

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// skimPad is a string's contents that fill the rest of a 64-byte block
// after n bytes.
func skimPad(n int) string { return strings.Repeat("a", 64-n) }

// TestSkimNested: skimNested finds the end of the value at offset 0 where
// the byte loop does, block boundaries, escapes and strings included, and
// leaves to the byte loop what it cannot tell (fast false): errors and
// deep nesting.
func TestSkimNested(t *testing.T) {
	samples := strings.Repeat(`[1780000200,"123456.25"],`, 30)
	rows := []struct {
		name string
		in   string
		want int  // the end the byte loop finds, -1 for an error
		fast bool // skimNested tells too
	}{
		{name: "empty", in: `[]`, want: 2, fast: true},
		{name: "stops at its close", in: `[1,2] [`, want: 5, fast: true},
		{name: "samples in blocks", in: `[` + samples + `[1,"2"]]}}`, want: 1 + len(samples) + 8, fast: true},
		{name: "object", in: `{"metric":{"a":"b"},"values":[` + samples + `[1,"2"]]},`, want: 30 + len(samples) + 9, fast: true},
		{name: "closes at the last byte of a block", in: `["` + skimPad(4) + `"]]`, want: 64, fast: true},
		{name: "closes at the first byte of a block", in: `["` + skimPad(3) + `"]]`, want: 65, fast: true},
		{name: "brackets in a string across blocks", in: `["` + skimPad(2) + `]}{[]` + strings.Repeat("b", 70) + `"],x`, want: 64 + 5 + 70 + 2, fast: true},
		{name: "a string opens at the last byte of a block", in: `[` + strings.Repeat("1", 62) + `"]` + strings.Repeat("}", 80) + `"]`, want: 64 + 1 + 80 + 2, fast: true},
		{name: "escaped quote", in: `["` + skimPad(2) + `\"]"]`, want: 64 + 5, fast: true},
		{name: "escaped quote across blocks", in: `["` + skimPad(3) + `\"]"]`, want: 64 + 4, fast: true},
		{name: "escaped backslash, then the closing quote", in: `["` + skimPad(4) + `\\"]`, want: 64 + 2, fast: true},
		{name: "escape in a block, then more blocks", in: `["\n` + skimPad(4) + `"` + samples + `[]]`, want: 64 + 1 + len(samples) + 3, fast: true},
		{name: "control characters between values", in: "[\n" + samples + "\t[1]\r\n]", want: 2 + len(samples) + 7, fast: true},
		{name: "bytes that fold to brackets", in: "[true,y,Y,_,\x7f,null," + samples + "[]]", want: 19 + len(samples) + 3, fast: true},
		{name: "64 levels", in: strings.Repeat("[", 64) + skimPad(0) + strings.Repeat("]", 64) + "]", want: 192, fast: true},
		{name: "65 levels: the byte loop's", in: strings.Repeat("[", 65) + strings.Repeat("]", 66), want: 130},
		{name: "65 levels in a block's byte loop", in: `["\n` + skimPad(4) + `"` + strings.Repeat("{", 65) + strings.Repeat("}", 65) + `]`, want: 64 + 1 + 130 + 1},

		{name: "mismatched", in: `[` + samples + `}`, want: -1},
		{name: "mismatched in a block's byte loop", in: `[` + samples + `"\t"}`, want: -1},
		{name: "closes what did not open", in: `]` + samples, want: -1},
		{name: "not closed", in: `[` + samples, want: -1},
		{name: "string not closed", in: `["` + samples, want: -1},
		{name: "control character in a string", in: "[\"\x1f" + skimPad(3) + `"]`, want: -1},
		{name: "control character in a string, in the last bytes", in: `["` + skimPad(2) + "\x1f\"]", want: -1},
		{name: "escape at the end", in: `["` + skimPad(2) + `\`, want: -1},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			b := []byte(row.in)
			ref := &jsonDecoder{b: b}
			ref.skipNestedBytes()
			if row.want < 0 {
				require.Error(t, ref.err)
			} else {
				require.NoError(t, ref.err)
				require.Equal(t, row.want, ref.i)
			}
			end, ok := skimNested(b, 0)
			require.Equal(t, row.fast, ok)
			if ok {
				require.Equal(t, row.want, end)
			}
			d := &jsonDecoder{b: b}
			d.skipNested()
			require.Equal(t, ref.err, d.err)
			require.Equal(t, ref.i, d.i)
		})
	}
}

// TestSkimNestedMatchesBytes runs skimNested and the byte loop over
// answers cut at every byte and with every byte replaced by each byte
// that matters to them: skimNested tells exactly when the byte loop finds
// no error (nesting no deeper than 64 levels), at the same end, and
// skipNested gives the byte loop's errors and offsets.
func TestSkimNestedMatchesBytes(t *testing.T) {
	matrix := rawSeriesMatrix(6, 1_780_000_200_000, 1_780_000_260_000, 15_000)
	matrix[2].Metric["escaped"] = "a \"quoted\" \\ value\n"
	bodies := []string{
		lazyBody,
		encode(t, &Response{Status: statusSuccess, Data: Data{ResultType: model.ValMatrix, Result: matrix}}),
	}
	check := func(t *testing.T, b []byte) {
		ref := &jsonDecoder{b: b}
		ref.skipNestedBytes()
		end, ok := skimNested(b, 0)
		if ok {
			require.NoError(t, ref.err, "%q", b)
			require.Equal(t, ref.i, end, "%q", b)
		} else if ref.err == nil {
			require.Greater(t, bytes.Count(b[:ref.i], []byte("["))+bytes.Count(b[:ref.i], []byte("{")), 64, "only deep nesting is left to the byte loop: %q", b)
		}
		d := &jsonDecoder{b: b}
		d.skipNested()
		require.Equal(t, ref.err, d.err)
		require.Equal(t, ref.i, d.i)
	}
	for _, body := range bodies {
		series := []byte(body[strings.Index(body, `"result":`)+len(`"result":`):])
		end, ok := skimNested(series, 0)
		require.True(t, ok)
		require.Equal(t, len(series)-len("}}"), end)
		for i := range len(series) {
			check(t, series[:i])
			b := bytes.Clone(series)
			for _, c := range []byte("[]{}\"\\\n\x00 y_Y\x7f,a") {
				b[i] = c
				check(t, b)
			}
		}
	}
}

// FuzzSkimNested: skimNested never accepts what the byte loop refuses,
// nor ends elsewhere, and accepts what it accepts unless it nests deeper
// than 64 levels.
func FuzzSkimNested(f *testing.F) {
	f.Add([]byte(lazyBody[strings.Index(lazyBody, "[{"):]))
	f.Add([]byte(`["` + skimPad(3) + `\"]"]`))
	f.Add([]byte(`["\n` + skimPad(4) + `"[{"a":[1,"2"]}]]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ref := &jsonDecoder{b: b}
		ref.skipNestedBytes()
		end, ok := skimNested(b, 0)
		if ok {
			require.NoError(t, ref.err)
			require.Equal(t, ref.i, end)
		} else if ref.err == nil {
			require.Greater(t, bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")), 64)
		}
	})
}
