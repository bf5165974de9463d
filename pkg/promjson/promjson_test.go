package promjson

import (
	"math"
	"math/rand/v2"
	"testing"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/util/jsonutil"
	"github.com/stretchr/testify/require"
)

// TestMatchesPrometheus requires the bytes Prometheus's own encoders write,
// for values, timestamps and strings at their edges.
func TestMatchesPrometheus(t *testing.T) {
	api := jsoniter.ConfigCompatibleWithStandardLibrary
	stream := func(f func(*jsoniter.Stream)) string {
		s := api.BorrowStream(nil)
		defer api.ReturnStream(s)
		f(s)
		return string(s.Buffer())
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1, 42, 1e15 - 1, 1e15, 1e21, 1.5, -0.25, 1e-6, 1e-7, 123456.789, math.MaxFloat64,
		math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1),
		0.1, 0.2, 0.3, 0.001, -0.001, 0.0005, 0.05, 0.999, 1.001, 99.95, 1 << 42, 1<<43 - 0.5, 1<<43 + 0.5, 1<<43 - 0.25, 1<<42 + 0.125,
		8796093022207.999, 8796093022207.998, 4398046511103.999, 1e12 + 0.1, 123456.75, -987654.321, 0.1 + 0.2, 1.0000000000000002} {
		want := stream(func(s *jsoniter.Stream) { jsonutil.MarshalFloat(f, s) })
		require.Equal(t, want, string(AppendFloat(nil, f)), "float %v", f)
	}
	// Numbers of a few decimals, which AppendFloat writes without strconv,
	// at every magnitude up to past where it stops doing so, and random
	// floats around them.
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		scale := math.Pow(10, float64(rnd.IntN(17)))
		f := math.Round(rnd.Float64()*scale) / float64([]int{1, 2, 4, 8, 10, 100, 1000, 10000}[rnd.IntN(8)])
		if rnd.IntN(2) == 0 {
			f = -f
		}
		if rnd.IntN(4) == 0 {
			f = math.Nextafter(f, math.Inf(rnd.IntN(2)*2-1))
		}
		want := stream(func(s *jsoniter.Stream) { jsonutil.MarshalFloat(f, s) })
		if want != string(AppendFloat(nil, f)) {
			require.Equal(t, want, string(AppendFloat(nil, f)), "float %v (%x)", f, math.Float64bits(f))
		}
	}
	for _, ts := range []int64{0, 1, 999, 1000, 1001, 1010, 1100, 1700000000123, -1, -1500} {
		want := stream(func(s *jsoniter.Stream) { jsonutil.MarshalTimestamp(ts, s) })
		require.Equal(t, want, string(AppendTimestamp(nil, ts)), "timestamp %d", ts)
	}
	for _, str := range []string{"", "plain", `q"uote`, `back\slash`, "tab\tnew\nline\r", "\x00\x01\x1f", "<&>", "é", "bad\xffutf8", "\u2028\u2029", "\b\f"} {
		wantLabel := stream(func(s *jsoniter.Stream) { s.WriteString(str) })
		require.Equal(t, wantLabel, string(AppendLabelString(nil, str)), "label string %q", str)
		wantString := stream(func(s *jsoniter.Stream) { s.WriteVal(str) })
		require.Equal(t, wantString, string(AppendString(nil, str)), "string %q", str)
	}
	require.Equal(t, `,"warnings":["a","\u003cb\u003e"]`, string(AppendStrings(nil, `,"warnings":`, []string{"a", "<b>"})))
	require.Empty(t, AppendStrings(nil, `,"warnings":`, nil))
}
