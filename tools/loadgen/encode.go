package main

import (
	"fmt"

	"github.com/golang/snappy"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// remoteWrite2Headers are the headers of a remote-write 2.0 push; without
// them the client sends 1.0's. Read-only: the shards share it.
var remoteWrite2Headers = map[string]string{
	"Content-Type":                      "application/x-protobuf;proto=io.prometheus.write.v2.Request",
	"Content-Encoding":                  "snappy",
	"X-Prometheus-Remote-Write-Version": "2.0.0",
}

// v2Encoder encodes a request's series as a snappy-compressed
// io.prometheus.write.v2.Request. It keeps the symbols table and the
// label references from one step to the next and rebuilds them only when
// churn has replaced one of the request's series, so that a step costs
// little more than writing the samples. It belongs to one requestCache.
type v2Encoder struct {
	symbols writev2.SymbolsTable
	series  []writev2.TimeSeries
	gens    []int64 // the generation series[i]'s references were made for; -1: none
	buf     []byte  // the protobuf encoding, reused
}

// encode returns the body of the first n series of c, which build has
// brought up to date; slot is the slot of c's first series.
func (e *v2Encoder) encode(gen *Generator, c *requestCache, slot, n int) ([]byte, error) {
	if e.gens == nil {
		e.symbols = writev2.NewSymbolTable()
		e.series = make([]writev2.TimeSeries, len(c.gens))
		e.gens = make([]int64, len(c.gens))
		for i := range e.series {
			e.series[i].Samples = make([]writev2.Sample, 1)
			e.gens[i] = -1
		}
	}
	rebuild := false
	for i := range n {
		rebuild = rebuild || e.gens[i] != c.gens[i]
	}
	if rebuild {
		// From scratch, so that the symbols of replaced series go.
		e.symbols.Reset()
		for i := range e.series {
			ts := &e.series[i]
			if i >= n {
				e.gens[i] = -1
				continue
			}
			ts.LabelsRefs = ts.LabelsRefs[:0]
			for _, l := range c.wr.Timeseries[i].Labels {
				ts.LabelsRefs = append(ts.LabelsRefs, e.symbols.Symbolize(l.Name), e.symbols.Symbolize(l.Value))
			}
			ts.Metadata.Type = writev2.Metadata_METRIC_TYPE_GAUGE
			if gen.IsCounter(slot + i) {
				ts.Metadata.Type = writev2.Metadata_METRIC_TYPE_COUNTER
			}
			e.gens[i] = c.gens[i]
		}
	}
	for i := range n {
		s := c.wr.Timeseries[i].Samples[0]
		e.series[i].Samples[0] = writev2.Sample{Value: s.Value, Timestamp: s.Timestamp}
	}
	req := writev2.Request{Symbols: e.symbols.Symbols(), Timeseries: e.series[:n]}
	b, err := req.OptimizedMarshal(e.buf)
	if err != nil {
		return nil, fmt.Errorf("encode remote-write 2.0 request: %w", err)
	}
	e.buf = b
	return snappy.Encode(nil, b), nil
}
