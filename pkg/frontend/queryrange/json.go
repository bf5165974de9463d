package queryrange

import (
	"strconv"

	"github.com/prometheus/common/model"

	"github.com/neocortex-metrics/neocortex/pkg/promjson"
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
	if r.lazy == nil {
		m := r.Data.Result
		return appendResponse(make([]byte, 0, matrixSizeHint(m)), r, func(b []byte) []byte { return appendMatrix(b, m) }), nil
	}
	ss, err := r.lazy.series()
	if err != nil {
		return nil, err
	}
	return appendResponse(make([]byte, 0, seriesSizeHint(ss)), r, func(b []byte) []byte { return appendSeriesList(b, ss) }), nil
}

func matrixSizeHint(m model.Matrix) int {
	n := 64
	for _, s := range m {
		n += 64 + 32*len(s.Values) + 256*len(s.Histograms)
		for k, v := range s.Metric {
			n += len(k) + len(v) + 6
		}
	}
	return n
}

func seriesSizeHint(ss []series) int {
	n := 64
	for _, s := range ss {
		n += 64 + 32*len(s.floats) + 256*len(s.hists)
		for _, l := range s.labels {
			n += len(l.name) + len(l.value) + 6
		}
	}
	return n
}

// appendResponse appends r, its series written by result.
func appendResponse(b []byte, r *Response, result func([]byte) []byte) []byte {
	b = append(b, `{"status":`...)
	b = promjson.AppendString(b, r.Status)
	if r.Data.ResultType != model.ValNone || r.hasSeries() {
		b = append(b, `,"data":{"resultType":`...)
		b = promjson.AppendString(b, r.Data.ResultType.String())
		b = append(b, `,"result":`...)
		b = result(b)
		b = append(b, '}')
	}
	if r.ErrorType != "" {
		b = append(b, `,"errorType":`...)
		b = promjson.AppendString(b, r.ErrorType)
	}
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = promjson.AppendString(b, r.Error)
	}
	b = promjson.AppendStrings(b, `,"warnings":`, r.Warnings)
	b = promjson.AppendStrings(b, `,"infos":`, r.Infos)
	return append(b, '}')
}

func appendMatrix(b []byte, m model.Matrix) []byte {
	b = append(b, '[')
	labels := make([]labelPair, 0, 16)
	ts := new(timestampCache)
	for i, s := range m {
		if i > 0 {
			b = append(b, ',')
		}
		labels = sortedPairs(labels[:0], s.Metric)
		b = appendSeriesJSON(b, ts, labels, s.Values, s.Histograms)
	}
	return append(b, ']')
}

func appendSeriesList(b []byte, ss []series) []byte {
	b = append(b, '[')
	ts := new(timestampCache)
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSeriesJSON(b, ts, s.labels, s.floats, s.hists)
	}
	return append(b, ']')
}

// appendSeriesJSON writes one series, its labels (sorted by name, as
// labels.Labels holds them) and its samples.
func appendSeriesJSON(b []byte, ts *timestampCache, labels []labelPair, floats []model.SamplePair, hists []model.SampleHistogramPair) []byte {
	b = append(b, `{"metric":{`...)
	for i, l := range labels {
		if i > 0 {
			b = append(b, ',')
		}
		b = promjson.AppendLabelString(b, l.name)
		b = append(b, ':')
		b = promjson.AppendLabelString(b, l.value)
	}
	b = append(b, '}')
	ts.nextSeries()
	for j, p := range floats {
		if j == 0 {
			b = append(b, `,"values":[`...)
		} else {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = ts.append(b, int64(p.Timestamp))
		b = append(b, ',')
		b = promjson.AppendFloat(b, float64(p.Value))
		b = append(b, ']')
	}
	if len(floats) > 0 {
		b = append(b, ']')
	}
	for j, p := range hists {
		if j == 0 {
			b = append(b, `,"histograms":[`...)
		} else {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = promjson.AppendTimestamp(b, int64(p.Timestamp))
		b = append(b, ',')
		b = appendHistogram(b, p.Histogram)
		b = append(b, ']')
	}
	if len(hists) > 0 {
		b = append(b, ']')
	}
	return append(b, '}')
}

// timestampCache remembers where the floats of the series written last
// had their timestamps written: the series of an answer mostly have the
// same ones (one per step), and copying their JSON is quicker than
// formatting it again, which was a good part of writing a big answer.
type timestampCache struct {
	prev, cur []writtenTimestamp
	next      int // the first of prev not before the timestamp to write
}

type writtenTimestamp struct {
	t        int64
	from, to int // in the buffer written to
}

// nextSeries starts the floats of another series.
func (c *timestampCache) nextSeries() {
	c.prev, c.cur, c.next = c.cur, c.prev[:0], 0
}

// append is promjson.AppendTimestamp, for the floats of a series in time
// order.
func (c *timestampCache) append(b []byte, t int64) []byte {
	for c.next < len(c.prev) && c.prev[c.next].t < t {
		c.next++
	}
	from := len(b)
	if c.next < len(c.prev) && c.prev[c.next].t == t {
		p := c.prev[c.next]
		b = append(b, b[p.from:p.to]...)
	} else {
		b = promjson.AppendTimestamp(b, t)
	}
	c.cur = append(c.cur, writtenTimestamp{t: t, from: from, to: len(b)})
	return b
}

// appendHistogram is jsonutil.MarshalHistogram: empty buckets are left out.
func appendHistogram(b []byte, h *model.SampleHistogram) []byte {
	if h == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"count":`...)
	b = promjson.AppendFloat(b, float64(h.Count))
	b = append(b, `,"sum":`...)
	b = promjson.AppendFloat(b, float64(h.Sum))
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
		b = promjson.AppendFloat(b, float64(bk.Lower))
		b = append(b, ',')
		b = promjson.AppendFloat(b, float64(bk.Upper))
		b = append(b, ',')
		b = promjson.AppendFloat(b, float64(bk.Count))
		b = append(b, ']')
	}
	if found {
		b = append(b, ']')
	}
	return append(b, '}')
}
