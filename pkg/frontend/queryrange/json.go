package queryrange

import (
	"slices"
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
	b = promjson.AppendString(b, r.Status)
	if r.Data.ResultType != model.ValNone || m != nil {
		b = append(b, `,"data":{"resultType":`...)
		b = promjson.AppendString(b, r.Data.ResultType.String())
		b = append(b, `,"result":`...)
		b = appendMatrix(b, m)
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
			b = promjson.AppendTimestamp(b, int64(p.Timestamp))
			b = append(b, ',')
			b = promjson.AppendFloat(b, float64(p.Value))
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
			b = promjson.AppendTimestamp(b, int64(p.Timestamp))
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
		b = promjson.AppendLabelString(b, n)
		b = append(b, ':')
		b = promjson.AppendLabelString(b, string(m[model.LabelName(n)]))
	}
	return append(b, '}')
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
