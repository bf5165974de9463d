package querier

import (
	"runtime"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/neocortex-metrics/neocortex/pkg/promjson"
)

// matrixCodec writes successful matrix answers (range queries, the bulk
// of what the API sends) with appends into one buffer sized up front,
// byte for byte as v1.JSONCodec does through jsoniter, which grows its
// buffer by copying and copies the result once more. Everything else —
// errors, vectors, scalars, histograms, stats, cost — goes to
// v1.JSONCodec.
//
// It is installed as the API's first codec, which is also its default
// (for requests without an Accept header), so CanEncode accepts all.
type matrixCodec struct {
	fallback v1.JSONCodec
}

var _ v1.Codec = matrixCodec{}

func (c matrixCodec) ContentType() v1.MIMEType { return c.fallback.ContentType() }

func (matrixCodec) CanEncode(*v1.Response) bool { return true }

func (c matrixCodec) Encode(resp *v1.Response) ([]byte, error) {
	m, ok := floatMatrix(resp)
	if !ok {
		return c.fallback.Encode(resp)
	}
	return appendMatrixResponse(make([]byte, 0, matrixSizeHint(m, resp)), resp, m, encodeWorkers(m)), nil
}

// minPointsPerEncoder is the least number of points worth an encoding
// goroutine of its own: a large answer is written in parts, one per CPU,
// that are joined in order.
const minPointsPerEncoder = 1 << 17

// encodeWorkers is how many goroutines write m.
func encodeWorkers(m promql.Matrix) int {
	points := 0
	for _, s := range m {
		points += len(s.Floats)
	}
	return max(1, min(runtime.GOMAXPROCS(0), 8, points/minPointsPerEncoder))
}

// floatMatrix returns the matrix of a successful range-query answer
// without histograms, stats or cost: the answers matrixCodec writes.
func floatMatrix(resp *v1.Response) (promql.Matrix, bool) {
	if resp.Status != "success" || resp.ErrorType != "" || resp.Error != "" {
		return nil, false
	}
	d, ok := resp.Data.(*v1.QueryData)
	if !ok || d == nil || d.Stats != nil || d.Cost != nil || d.ResultType != parser.ValueTypeMatrix {
		return nil, false
	}
	m, ok := d.Result.(promql.Matrix)
	if !ok || m == nil {
		return nil, false
	}
	for _, s := range m {
		if len(s.Histograms) > 0 {
			return nil, false
		}
	}
	return m, true
}

// matrixSizeHint overestimates the encoded size a little: a float point
// is at most ~45 bytes ([1700000000.123,"-1.2345678901234567e-123"]) but
// usually about 30.
func matrixSizeHint(m promql.Matrix, resp *v1.Response) int {
	n := 128
	for _, s := range resp.Warnings {
		n += len(s) + 8
	}
	for _, s := range resp.Infos {
		n += len(s) + 8
	}
	return n + seriesSizeHint(m)
}

func seriesSizeHint(m promql.Matrix) int {
	n := 0
	for _, s := range m {
		n += 32 + 36*len(s.Floats) + s.Metric.Len()*6
		s.Metric.Range(func(l labels.Label) { n += len(l.Name) + len(l.Value) })
	}
	return n
}

// appendMatrixResponse writes what jsoniter's
// ConfigCompatibleWithStandardLibrary writes for resp, with Prometheus's
// encoders for the matrix (web/api/v1/json_codec.go, util/jsonutil). With
// workers > 1, the series are written in that many parts at once, each
// with about as many points, and joined in order.
func appendMatrixResponse(b []byte, resp *v1.Response, m promql.Matrix, workers int) []byte {
	b = append(b, `{"status":`...)
	b = promjson.AppendString(b, string(resp.Status))
	b = append(b, `,"data":{"resultType":"matrix","result":[`...)
	parts := splitByPoints(m, workers)
	rest := make([][]byte, len(parts)-1)
	var wg sync.WaitGroup
	for i, part := range parts[1:] {
		wg.Go(func() {
			rest[i] = appendSeries(make([]byte, 0, seriesSizeHint(part)+1), part, true)
		})
	}
	b = appendSeries(b, parts[0], false)
	wg.Wait()
	for _, r := range rest {
		b = append(b, r...)
	}
	b = append(b, "]}"...)
	b = promjson.AppendStrings(b, `,"warnings":`, resp.Warnings)
	b = promjson.AppendStrings(b, `,"infos":`, resp.Infos)
	return append(b, '}')
}

// splitByPoints cuts m into at most n runs of series with about as many
// points each; there is always at least one run, maybe empty.
func splitByPoints(m promql.Matrix, n int) []promql.Matrix {
	if n <= 1 || len(m) < n {
		return []promql.Matrix{m}
	}
	total := 0
	for _, s := range m {
		total += len(s.Floats)
	}
	if total == 0 {
		return []promql.Matrix{m}
	}
	parts := make([]promql.Matrix, 0, n)
	start, points := 0, 0
	for i, s := range m {
		points += len(s.Floats)
		if len(parts) < n-1 && points*n >= total*(len(parts)+1) {
			parts = append(parts, m[start:i+1])
			start = i + 1
		}
	}
	if start < len(m) {
		parts = append(parts, m[start:])
	}
	return parts
}

// appendSeries writes the series of m as elements of the result array,
// after a comma when more is true.
func appendSeries(b []byte, m promql.Matrix, more bool) []byte {
	var ts timestampCache
	for i, s := range m {
		if i > 0 || more {
			b = append(b, ',')
		}
		b = append(b, `{"metric":{`...)
		first := true
		s.Metric.Range(func(l labels.Label) {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = promjson.AppendLabelString(b, l.Name)
			b = append(b, ':')
			b = promjson.AppendLabelString(b, l.Value)
		})
		b = append(b, '}')
		for j, p := range s.Floats {
			if j == 0 {
				b = append(b, `,"values":[`...)
			} else {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = ts.append(b, p.T)
			b = append(b, ',')
			b = promjson.AppendFloat(b, p.F)
			b = append(b, ']')
		}
		if len(s.Floats) > 0 {
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return b
}

// timestampCache keeps the timestamps written so far, encoded: the series
// of a range query share their evaluation timestamps, and formatting
// them costs as much as formatting the values.
type timestampCache struct {
	ts  []int64 // ascending
	enc []byte
	end []int // end of ts[i]'s encoding in enc
	pos int   // where the next lookup starts: series run through ts in order
}

func (c *timestampCache) append(b []byte, t int64) []byte {
	i := c.pos
	if i >= len(c.ts) || c.ts[i] != t {
		var found bool
		i, found = slices.BinarySearch(c.ts, t)
		if !found {
			start := len(b)
			b = promjson.AppendTimestamp(b, t)
			if i == len(c.ts) {
				c.ts = append(c.ts, t)
				c.enc = append(c.enc, b[start:]...)
				c.end = append(c.end, len(c.enc))
				c.pos = i + 1
			}
			return b
		}
	}
	c.pos = i + 1
	start := 0
	if i > 0 {
		start = c.end[i-1]
	}
	return append(b, c.enc[start:c.end[i]]...)
}
