package queryrange

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// decoded is body as DecodeResponse reads a querier's answer: its series
// left undecoded, and kept to be written as it came.
func decoded(t testing.TB, body string) *Response {
	t.Helper()
	resp, err := DecodeResponse(&http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body))})
	require.NoError(t, err)
	return resp
}

// answer is a successful answer with series, each a JSON object.
func answer(series ...string) string {
	return `{"status":"success","data":{"resultType":"matrix","result":[` + strings.Join(series, ",") + `]}}`
}

func TestMergeResponsesSeries(t *testing.T) {
	hist := func(n int) string {
		return `{"count":"` + strconv.Itoa(n) + `","sum":"1","buckets":[[0,"0","1","` + strconv.Itoa(n) + `"]]}`
	}
	rows := []struct {
		name  string
		parts []string
		want  string
	}{
		{"sorted: series in one part or both", []string{
			answer(`{"metric":{"a":"1"},"values":[[1,"1"],[2,"2"]]}`, `{"metric":{"a":"2"},"values":[[1,"1"]]}`),
			answer(`{"metric":{"a":"1"},"values":[[3,"3"]]}`, `{"metric":{"a":"3"},"values":[[3,"3"]]}`),
		}, answer(`{"metric":{"a":"1"},"values":[[1,"1"],[2,"2"],[3,"3"]]}`, `{"metric":{"a":"2"},"values":[[1,"1"]]}`, `{"metric":{"a":"3"},"values":[[3,"3"]]}`)},
		{"unsorted part: grouped, then sorted", []string{
			answer(`{"metric":{"a":"3"},"values":[[1,"1"]]}`, `{"metric":{"a":"1"},"values":[[1,"1"]]}`),
			answer(`{"metric":{"a":"1"},"values":[[2,"2"]]}`, `{"metric":{"a":"2"},"values":[[2,"2"]]}`),
		}, answer(`{"metric":{"a":"1"},"values":[[1,"1"],[2,"2"]]}`, `{"metric":{"a":"2"},"values":[[2,"2"]]}`, `{"metric":{"a":"3"},"values":[[1,"1"]]}`)},
		{"the same labels twice in a part", []string{
			answer(`{"metric":{"a":"1"},"values":[[1,"1"]]}`, `{"metric":{"a":"1"},"values":[[2,"2"]]}`),
			answer(`{"metric":{"a":"1"},"values":[[3,"3"]]}`),
		}, answer(`{"metric":{"a":"1"},"values":[[1,"1"],[2,"2"],[3,"3"]]}`)},
		{"overlapping timestamps: the first part's kept", []string{
			answer(`{"metric":{"a":"1"},"values":[[1,"1"],[2,"2"],[3,"3"]]}`),
			answer(`{"metric":{"a":"1"},"values":[[2,"-2"],[3,"-3"],[4,"4"]]}`),
		}, answer(`{"metric":{"a":"1"},"values":[[1,"1"],[2,"2"],[3,"3"],[4,"4"]]}`)},
		{"histograms, overlapping, and floats", []string{
			answer(`{"metric":{"h":"1"},"histograms":[[1,`+hist(1)+`],[2,`+hist(2)+`]]}`, `{"metric":{"h":"2"},"values":[[1,"1"]]}`),
			answer(`{"metric":{"h":"1"},"values":[[3,"3"]],"histograms":[[2,`+hist(-2)+`],[3,`+hist(3)+`]]}`, `{"metric":{"h":"2"},"histograms":[[2,`+hist(2)+`]]}`),
		}, answer(`{"metric":{"h":"1"},"values":[[3,"3"]],"histograms":[[1,`+hist(1)+`],[2,`+hist(2)+`],[3,`+hist(3)+`]]}`,
			`{"metric":{"h":"2"},"values":[[1,"1"]],"histograms":[[2,`+hist(2)+`]]}`)},
		{"Prometheus's label order: name, value, fewer labels first", []string{
			answer(`{"metric":{"a":"0","c":"0"},"values":[[1,"1"]]}`, `{"metric":{"a":"1"},"values":[[1,"1"]]}`, `{"metric":{"b":"0"},"values":[[1,"1"]]}`),
			answer(`{"metric":{"a":"1"},"values":[[2,"2"]]}`, `{"metric":{"a":"1","b":"2"},"values":[[2,"2"]]}`, `{"metric":{"b":"0"},"values":[[2,"2"]]}`),
		}, answer(`{"metric":{"a":"0","c":"0"},"values":[[1,"1"]]}`, `{"metric":{"a":"1"},"values":[[1,"1"],[2,"2"]]}`,
			`{"metric":{"a":"1","b":"2"},"values":[[2,"2"]]}`, `{"metric":{"b":"0"},"values":[[1,"1"],[2,"2"]]}`)},
		{"three parts, no labels, empty series", []string{
			answer(`{"metric":{},"values":[[1,"1"]]}`, `{"metric":{"a":"1"}}`),
			answer(`{"values":[[2,"2"]]}`),
			answer(`{"metric":null,"values":[[3,"3"]]}`, `{"metric":{"a":"1"},"values":[[3,"3"]]}`),
		}, answer(`{"metric":{},"values":[[1,"1"],[2,"2"],[3,"3"]]}`, `{"metric":{"a":"1"},"values":[[3,"3"]]}`)},
		{"labels out of order, or twice in a series: the last kept", []string{
			answer(`{"metric":{"b":"1","a":"2"},"values":[[1,"1"]]}`, `{"metric":{"c":"1","c":"3"},"values":[[1,"1"]]}`),
			answer(`{"metric":{"a":"2","b":"1"},"values":[[2,"2"]]}`, `{"metric":{"c":"3"},"values":[[2,"2"]]}`),
		}, answer(`{"metric":{"a":"2","b":"1"},"values":[[1,"1"],[2,"2"]]}`, `{"metric":{"c":"3"},"values":[[1,"1"],[2,"2"]]}`)},
		{"escaped labels", []string{
			answer(`{"metric":{"a":"x\"y\\z\u0041"},"values":[[1,"1"]]}`),
			answer(`{"metric":{"a":"x\"y\\zA"},"values":[[2,"2"]]}`),
		}, answer(`{"metric":{"a":"x\"y\\zA"},"values":[[1,"1"],[2,"2"]]}`)},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			var resps []*Response
			for _, p := range row.parts {
				resps = append(resps, decoded(t, p))
			}
			got := must[*Response](t)(mergeResponses(resps))
			require.Nil(t, got.raw)
			require.Equal(t, row.want, encode(t, got))

			// The same parts as model.Matrix: the same answer, a model.Matrix.
			var plain []*Response
			for _, p := range row.parts {
				plain = append(plain, must[*Response](t)(decodeResponseBody([]byte(p))))
			}
			gotPlain := must[*Response](t)(mergeResponses(plain))
			require.Nil(t, gotPlain.lazy)
			require.Equal(t, row.want, encode(t, gotPlain))
			// And read as one.
			m := must[model.Matrix](t)(got.Result())
			require.Equal(t, row.want, encode(t, &Response{Status: statusSuccess, Data: Data{ResultType: model.ValMatrix, Result: m}}))

			// Sorted parts merge in order as grouping and sorting would.
			parts := make([][]series, len(resps))
			sorted := true
			for i, r := range resps {
				parts[i] = must[[]series](t)(r.series())
				sorted = sorted && sortedByLabels(parts[i])
			}
			if sorted {
				require.Equal(t, mergeUnsorted(parts), mergeSorted(parts))
			}
		})
	}
}

// TestMergeResponsesSkipsEmptyParts: parts known to have no series (an
// empty cached extent, an empty answer) are left out, and the one part
// left is passed on as it came, as long as it stays unchanged.
func TestMergeResponsesSkipsEmptyParts(t *testing.T) {
	body := answer(`{"metric":{"a":"1"},"values":[[1,"1"]]}`)
	emptyExtent := &Response{Status: statusSuccess, Data: Data{ResultType: model.ValMatrix}, lazy: givenSeries(nil)}
	emptyAnswer := decoded(t, answer())
	rows := []struct {
		name    string
		parts   func() []*Response
		want    string
		written bool // as it came
	}{
		{"an empty extent, then an answer", func() []*Response { return []*Response{emptyExtent, decoded(t, body)} }, body, true},
		{"an answer, then empty ones", func() []*Response { return []*Response{decoded(t, body), emptyAnswer, emptyExtent} }, body, true},
		{"an empty part with a warning", func() []*Response {
			warned := &Response{Status: statusSuccess, Data: Data{ResultType: model.ValMatrix, Result: model.Matrix{}}, Warnings: []string{"w"}}
			return []*Response{warned, decoded(t, body)}
		}, strings.TrimSuffix(body, "}") + `,"warnings":["w"]}`, false},
		{"all empty", func() []*Response { return []*Response{emptyExtent, emptyAnswer} }, answer(), false},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			got := must[*Response](t)(mergeResponses(row.parts()))
			require.Equal(t, row.written, got.raw != nil)
			require.Equal(t, row.want, encode(t, got))
		})
	}
}

func TestParseDecimal(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-1", "1.5", "-1.25", "0.1", "123456.789", "0.3333333333333333", "00012.5000",
		"9007199254740991", "900719925474099.1", "0.000000000000000001"} {
		got, ok := parseDecimal([]byte(s))
		require.True(t, ok, s)
		want, err := strconv.ParseFloat(s, 64)
		require.NoError(t, err)
		require.Equal(t, math.Float64bits(want), math.Float64bits(got), s)
	}
	// Left to strconv.ParseFloat.
	for _, s := range []string{"", "-", ".", "1.", ".5", "+1", "1e5", "1E5", "NaN", "+Inf", "-Inf", "0x1p-2", "1_000", "1.2.3", "--1",
		"9007199254740992", "12345678901234567890", "0.00000000000000000000001"} {
		_, ok := parseDecimal([]byte(s))
		require.False(t, ok, s)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		f := math.Float64frombits(rnd.Uint64())
		if rnd.IntN(2) == 0 {
			f = math.Round(rnd.NormFloat64()*math.Pow(10, float64(rnd.IntN(12)))) / math.Pow(10, float64(rnd.IntN(8)))
		}
		for _, s := range []string{strconv.FormatFloat(f, 'f', -1, 64), strconv.FormatFloat(f, 'f', rnd.IntN(20), 64)} {
			want, err := strconv.ParseFloat(s, 64)
			if got, ok := parseDecimal([]byte(s)); ok {
				require.NoError(t, err, s)
				require.Equal(t, math.Float64bits(want), math.Float64bits(got), s)
			}
		}
	}
}

// TestDecodeExtentsLabelOrder: older cached values hold labels in any
// order (a map's); they are read sorted.
func TestDecodeExtentsLabelOrder(t *testing.T) {
	b := []byte{extentsFormat}
	b = binary.AppendUvarint(b, 1) // extents
	b = binary.AppendVarint(b, 1000)
	b = binary.AppendVarint(b, 0)
	b = binary.AppendUvarint(b, 1) // series
	b = binary.AppendUvarint(b, 3) // labels
	for _, s := range []string{"b", "1", "a", "2", "__name__", "up"} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, 1) // floats
	b = binary.AppendVarint(b, 1000)
	b = appendXOR(b, math.Float64bits(0.5))
	b = binary.AppendUvarint(b, 0) // histograms
	exts, err := decodeExtents(snappy.Encode(nil, b))
	require.NoError(t, err)
	require.Len(t, exts, 1)
	require.Equal(t, answer(`{"metric":{"__name__":"up","a":"2","b":"1"},"values":[[1,"0.5"]]}`), encode(t, exts[0].resp))
	m := must[model.Matrix](t)(exts[0].resp.Result())
	require.Equal(t, model.Metric{"__name__": "up", "a": "2", "b": "1"}, m[0].Metric)

	// Written again, sorted, and read back the same.
	again, err := decodeExtents(must[[]byte](t)(encodeExtents(exts)))
	require.NoError(t, err)
	require.Equal(t, encode(t, exts[0].resp), encode(t, again[0].resp))
}

// TestDecodingLeavesBuffersAlone: decoded labels point into the body or
// the cached value they come from, which the decoders never write to.
func TestDecodingLeavesBuffersAlone(t *testing.T) {
	body := []byte(answer(`{"metric":{"a":"1","b":"x\ty"},"values":[[1,"1"]]}`, `{"metric":{"a":"2"},"values":[[1,"1.5"]]}`))
	orig := bytes.Clone(body)
	resp, err := DecodeResponse(&http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: inMemoryBody{Reader: bytes.NewReader(body), b: body}})
	require.NoError(t, err)
	value := must[[]byte](t)(encodeExtents([]extent{{start: 1000, end: 1000, resp: resp}}))
	exts, err := decodeExtents(value)
	require.NoError(t, err)
	merged := must[*Response](t)(mergeResponses([]*Response{exts[0].resp, resp}))
	require.Equal(t, string(orig), encode(t, merged))
	require.Equal(t, orig, body)
	require.Equal(t, value, must[[]byte](t)(encodeExtents(exts)))
}
