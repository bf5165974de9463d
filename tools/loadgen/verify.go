package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/prompb"
)

// maxStepsPerQuery stays under the 11,000 points per series that the
// Prometheus API allows in one range query.
const maxStepsPerQuery = 10000

// Verifier reads the acknowledged samples of a run back through the
// Prometheus query API and compares them with what the generator recomputes.
//
// It asks, per tenant and metric name, for last_over_time(metric[interval -
// 1ms]) at step = interval over the run's steps. The steps land exactly on
// the samples' timestamps, and the window holds only the sample of its own
// step, so a missing sample comes back missing rather than hidden by
// lookback.
type Verifier struct {
	QueryURL   string
	HTTP       *http.Client
	Gen        *Generator
	Plan       *Plan
	Acks       *AckLog
	StartMs    int64
	IntervalMs int64
	// Steps is the number of steps sent.
	Steps int64
	// Concurrency is how many queries run at once.
	Concurrency int
	// MaxPointsPerQuery bounds series × steps of one query; the step range
	// is split to stay under it.
	MaxPointsPerQuery int
}

// VerifyResult counts what verification found. Expected = Found + Missing +
// the wrong samples that were acknowledged.
type VerifyResult struct {
	Expected int64 // acknowledged samples
	Found    int64 // acknowledged samples read back with the right value
	Missing  int64 // acknowledged samples not read back
	Wrong    int64 // samples read back with a value other than the one sent
	// Unexpected counts samples read back that were never acknowledged
	// (e.g. the stored part of a request that failed) or of unknown series.
	Unexpected int64
	Queries    int64
}

func (r *VerifyResult) add(o VerifyResult) {
	r.Expected += o.Expected
	r.Found += o.Found
	r.Missing += o.Missing
	r.Wrong += o.Wrong
	r.Unexpected += o.Unexpected
	r.Queries += o.Queries
}

// verifyQuery is one range query: the slots first, first+len(metricNames), …
// (count of them) of one tenant, all of one metric, over steps [k0, k1].
type verifyQuery struct {
	tenant       int
	first, count int
	k0, k1       int64
}

// Run verifies every tenant and returns the counts; an error means the
// verification itself could not be done.
func (v *Verifier) Run(ctx context.Context) (VerifyResult, error) {
	var qs []verifyQuery
	m := len(metricNames)
	for t, span := range v.Plan.TenantSlots {
		for first := span[0]; first < min(span[0]+m, span[1]); first++ {
			count := (span[1] - first + m - 1) / m
			per := int64(min(max(v.MaxPointsPerQuery/count, 1), maxStepsPerQuery))
			for k0 := int64(0); k0 < v.Steps; k0 += per {
				qs = append(qs, verifyQuery{tenant: t, first: first, count: count, k0: k0, k1: min(k0+per, v.Steps) - 1})
			}
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		total    VerifyResult
		firstErr error
		wg       sync.WaitGroup
	)
	work := make(chan verifyQuery)
	for range max(v.Concurrency, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := range work {
				r, err := v.check(ctx, q)
				mu.Lock()
				total.add(r)
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, q := range qs {
		select {
		case work <- q:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return total, firstErr
}

// expectedSeries is one generation of a slot the query may return.
type expectedSeries struct {
	slot int
	gen  int64
}

// check runs one query and compares its answer with the generator.
func (v *Verifier) check(ctx context.Context, q verifyQuery) (VerifyResult, error) {
	var r VerifyResult
	byKey := map[string]expectedSeries{}
	acked := func(slot, req int, k int64) bool {
		return slot-v.Plan.Requests[req].Lo < v.Acks.Acked(k, req)
	}
	reqs := make(map[int]int, q.count) // slot → request
	for i := range q.count {
		slot := q.first + i*len(metricNames)
		req := v.Plan.RequestOf(slot)
		reqs[slot] = req
		for g := v.Gen.Generation(slot, q.k0); g <= v.Gen.Generation(slot, q.k1); g++ {
			byKey[seriesKey(v.Gen.Labels(slot, g))] = expectedSeries{slot: slot, gen: g}
		}
		for k := q.k0; k <= q.k1; k++ {
			if acked(slot, req, k) {
				r.Expected++
			}
		}
	}

	result, err := v.queryRange(ctx, v.Plan.Tenants[q.tenant], v.Gen.MetricName(q.first), q.k0, q.k1)
	r.Queries = 1
	if err != nil {
		return r, err
	}
	var presentAcked int64
	for _, s := range result {
		e, ok := byKey[metricKey(s.Metric)]
		if !ok {
			r.Unexpected += int64(len(s.Values))
			continue
		}
		for _, p := range s.Values {
			ms, val, err := p.parse()
			if err != nil {
				return r, err
			}
			k := (ms - v.StartMs) / v.IntervalMs
			if (ms-v.StartMs)%v.IntervalMs != 0 || k < q.k0 || k > q.k1 || v.Gen.Generation(e.slot, k) != e.gen {
				r.Unexpected++
				continue
			}
			isAcked := acked(e.slot, reqs[e.slot], k)
			switch {
			case val != v.Gen.Value(e.slot, e.gen, k):
				r.Wrong++
				if isAcked {
					presentAcked++
				}
			case isAcked:
				presentAcked++
				r.Found++
			default:
				r.Unexpected++
			}
		}
	}
	r.Missing = r.Expected - presentAcked
	return r, nil
}

// rangeSeries is one series of a query_range matrix.
type rangeSeries struct {
	Metric map[string]string `json:"metric"`
	Values []rangePoint      `json:"values"`
}

// rangePoint is [<unix seconds>, "<value>"], kept raw so that the timestamp
// is read exactly.
type rangePoint [2]json.RawMessage

func (p rangePoint) parse() (int64, float64, error) {
	ms, err := parseAPITime(string(p[0]))
	if err != nil {
		return 0, 0, err
	}
	var s string
	if err := json.Unmarshal(p[1], &s); err != nil {
		return 0, 0, fmt.Errorf("parse sample value %s: %w", p[1], err)
	}
	val, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse sample value: %w", err)
	}
	return ms, val, nil
}

// parseAPITime reads a query API timestamp, seconds with up to three
// decimals, as milliseconds without going through a float.
func parseAPITime(s string) (int64, error) {
	sec, frac, _ := strings.Cut(s, ".")
	if len(frac) > 3 {
		return 0, fmt.Errorf("parse timestamp %q: finer than a millisecond", s)
	}
	n, err := strconv.ParseInt(sec+(frac + "000")[:3], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse timestamp %q: %w", s, err)
	}
	return n, nil
}

// formatAPITime writes milliseconds as the query API's seconds.
func formatAPITime(ms int64) string {
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
}

// queryRange asks for metric's samples over steps [k0, k1] as tenant.
func (v *Verifier) queryRange(ctx context.Context, tenant, metric string, k0, k1 int64) ([]rangeSeries, error) {
	form := url.Values{
		"query": {fmt.Sprintf("last_over_time({__name__=%q}[%dms])", metric, v.IntervalMs-1)},
		"start": {formatAPITime(v.StartMs + k0*v.IntervalMs)},
		"end":   {formatAPITime(v.StartMs + k1*v.IntervalMs)},
		"step":  {strconv.FormatFloat(float64(v.IntervalMs)/1000, 'f', -1, 64)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(v.QueryURL, "/")+"/api/v1/query_range", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := v.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %s for tenant %s: %w", metric, tenant, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("query %s for tenant %s: %s: %s", metric, tenant, resp.Status, strings.TrimSpace(string(b)))
	}
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string        `json:"resultType"`
			Result     []rangeSeries `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decode query answer for tenant %s: %w", tenant, err)
	}
	if body.Status != "success" || body.Data.ResultType != "matrix" {
		return nil, fmt.Errorf("query %s for tenant %s: status %q, result type %q: %s", metric, tenant, body.Status, body.Data.ResultType, body.Error)
	}
	return body.Data.Result, nil
}

// seriesKey identifies a series by its labels other than __name__ (each
// query reads one metric name).
func seriesKey(ls []prompb.Label) string {
	var b strings.Builder
	for _, l := range ls {
		if l.Name == "__name__" {
			continue
		}
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.Value))
		b.WriteByte(',')
	}
	return b.String()
}

// metricKey is seriesKey of a query answer's label map.
func metricKey(m map[string]string) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	ls := make([]prompb.Label, len(names))
	for i, n := range names {
		ls[i] = prompb.Label{Name: n, Value: m[n]}
	}
	return seriesKey(ls)
}
