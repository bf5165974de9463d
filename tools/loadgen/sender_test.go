package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// receiver is a remote-write server answering each attempt of a request
// with the status respond gives for its attempt number (1, 2, …).
type receiver struct {
	respond func(attempt int) (int, map[string]string)

	mu         sync.Mutex
	versions   map[string]int // requests per X-Prometheus-Remote-Write-Version
	attempts   map[string]int
	tenants    map[string]int
	stored     []storedSample
	last       map[string]int64
	outOfOrder int
}

type storedSample struct {
	tenant string
	labels []prompb.Label
	ts     int64
	value  float64
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req prompb.WriteRequest
	switch ct, version := r.Header.Get("Content-Type"), r.Header.Get("X-Prometheus-Remote-Write-Version"); {
	case ct == "application/x-protobuf" && version == "0.1.0":
		err = req.Unmarshal(raw)
	case ct == "application/x-protobuf;proto=io.prometheus.write.v2.Request" && version == "2.0.0":
		req, err = decodeV2(raw)
	default:
		err = fmt.Errorf("content type %q, version %q", ct, version)
	}
	if err != nil || len(req.Timeseries) == 0 || r.Header.Get("Content-Encoding") != "snappy" {
		http.Error(w, fmt.Sprintf("bad write request: %v", err), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.versions[r.Header.Get("X-Prometheus-Remote-Write-Version")]++
	first := req.Timeseries[0]
	key := seriesKey(first.Labels) + first.Labels[0].Value + time.UnixMilli(first.Samples[0].Timestamp).String()
	rc.attempts[key]++
	status, headers := rc.respond(rc.attempts[key])
	for k, v := range headers {
		w.Header().Set(k, v)
	}
	if status/100 == 2 {
		rc.tenants[r.Header.Get("X-Scope-OrgID")] += len(req.Timeseries)
		for _, ts := range req.Timeseries {
			id := seriesKey(ts.Labels) + ts.Labels[0].Value
			for _, s := range ts.Samples {
				if last, ok := rc.last[id]; ok && s.Timestamp <= last {
					rc.outOfOrder++
				}
				rc.last[id] = s.Timestamp
				rc.stored = append(rc.stored, storedSample{tenant: r.Header.Get("X-Scope-OrgID"), labels: ts.Labels, ts: s.Timestamp, value: s.Value})
			}
		}
	}
	w.WriteHeader(status)
}

// decodeV2 decodes a remote-write 2.0 request with the generated code and
// resolves its labels.
func decodeV2(raw []byte) (prompb.WriteRequest, error) {
	var v2 writev2.Request
	if err := v2.Unmarshal(raw); err != nil {
		return prompb.WriteRequest{}, err
	}
	var req prompb.WriteRequest
	for _, ts := range v2.Timeseries {
		var s prompb.TimeSeries
		for i := 0; i+1 < len(ts.LabelsRefs); i += 2 {
			s.Labels = append(s.Labels, prompb.Label{Name: v2.Symbols[ts.LabelsRefs[i]], Value: v2.Symbols[ts.LabelsRefs[i+1]]})
		}
		for _, x := range ts.Samples {
			s.Samples = append(s.Samples, prompb.Sample{Value: x.Value, Timestamp: x.Timestamp})
		}
		req.Timeseries = append(req.Timeseries, s)
	}
	return req, nil
}

func always(status int) func(int) (int, map[string]string) {
	return func(int) (int, map[string]string) { return status, nil }
}

func failFirst(status int, headers map[string]string) func(int) (int, map[string]string) {
	return func(attempt int) (int, map[string]string) {
		if attempt == 1 {
			return status, headers
		}
		return http.StatusNoContent, nil
	}
}

func TestSender(t *testing.T) {
	const (
		active     = 10
		steps      = 3
		perRequest = 3
		startMs    = int64(1_700_000_000_000)
		intervalMs = int64(15000)
	)
	tenants := []string{"team-a", "team-b"}
	// Slots 0-4 go to team-a in requests [0,3) [3,5), 5-9 to team-b in
	// [5,8) [8,10): four requests per step.
	const requestsPerStep = 4

	for _, tc := range []struct {
		name    string
		respond func(int) (int, map[string]string)
		limit   int64 // samples; 0 = all steps
		// backfill steps go through Backfill, the others through Enqueue;
		// the want figures are Enqueue's, wantBackfill* Backfill's.
		backfill            int64
		wantSamples         int64 // sent
		wantAcked           int64
		wantRetries         int64
		wantErrors          map[int]int64
		wantLatency         int64 // attempts timed
		wantBackfillAcked   int64
		wantBackfillLatency int64
	}{
		{
			name: "all acknowledged", respond: always(http.StatusNoContent),
			wantSamples: steps * active, wantAcked: steps * active, wantErrors: map[int]int64{},
			wantLatency: steps * requestsPerStep,
		},
		{
			name: "503 is retried", respond: failFirst(http.StatusServiceUnavailable, nil),
			wantSamples: steps * active, wantAcked: steps * active, wantRetries: steps * requestsPerStep,
			wantErrors:  map[int]int64{503: steps * requestsPerStep},
			wantLatency: 2 * steps * requestsPerStep,
		},
		{
			name: "429 is retried after Retry-After", respond: failFirst(http.StatusTooManyRequests, map[string]string{"Retry-After": "0"}),
			wantSamples: steps * active, wantAcked: steps * active, wantRetries: steps * requestsPerStep,
			wantErrors:  map[int]int64{429: steps * requestsPerStep},
			wantLatency: 2 * steps * requestsPerStep,
		},
		{
			name: "400 is not retried", respond: always(http.StatusBadRequest),
			wantSamples: steps * active, wantAcked: 0, wantRetries: 0,
			wantErrors:  map[int]int64{400: steps * requestsPerStep},
			wantLatency: steps * requestsPerStep,
		},
		{
			name: "5xx gives up after the last retry", respond: always(http.StatusBadGateway),
			wantSamples: steps * active, wantAcked: 0, wantRetries: 2 * steps * requestsPerStep,
			wantErrors:  map[int]int64{502: 3 * steps * requestsPerStep},
			wantLatency: 3 * steps * requestsPerStep,
		},
		{
			name: "a sample limit cuts the last step", respond: always(http.StatusNoContent), limit: 14,
			wantSamples: 14, wantAcked: 14, wantErrors: map[int]int64{},
			wantLatency: requestsPerStep + 2,
		},
		{
			name: "backfilled steps are counted apart", respond: always(http.StatusNoContent), backfill: 2,
			wantSamples: active, wantAcked: active, wantErrors: map[int]int64{},
			wantLatency: requestsPerStep, wantBackfillAcked: 2 * active, wantBackfillLatency: 2 * requestsPerStep,
		},
		{
			name: "backfilled steps are retried", respond: failFirst(http.StatusServiceUnavailable, nil), backfill: 1,
			wantSamples: 2 * active, wantAcked: 2 * active, wantRetries: 2 * requestsPerStep,
			wantErrors:  map[int]int64{503: 2 * requestsPerStep},
			wantLatency: 4 * requestsPerStep, wantBackfillAcked: active, wantBackfillLatency: 2 * requestsPerStep,
		},
	} {
		for _, version := range []string{"1.0", "2.0"} {
			t.Run(tc.name+"/remote-write-"+version, func(t *testing.T) {
				rc := &receiver{respond: tc.respond, versions: map[string]int{}, attempts: map[string]int{}, tenants: map[string]int{}, last: map[string]int64{}}
				srv := httptest.NewServer(rc)
				defer srv.Close()

				gen := NewGenerator(5, active, 6, 0, intervalMs)
				plan := NewPlan(tenants, active, perRequest)
				require.Len(t, plan.Requests, requestsPerStep)
				stats := NewStats(time.Duration(intervalMs)*time.Millisecond, time.Now)
				bfStats := NewStats(time.Duration(intervalMs)*time.Millisecond, time.Now)
				acks := &AckLog{}
				s := NewSender(SenderConfig{
					URL: srv.URL, Concurrency: 2, RemoteWriteVersion: version, Timeout: 5 * time.Second,
					MaxRetries: 2, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
				}, SenderDeps{Gen: gen, Plan: plan, Stats: stats, BackfillStats: bfStats, Acks: acks, Logger: slog.New(slog.DiscardHandler)})
				ctx := context.Background()
				s.Start(ctx)
				if tc.backfill > 0 {
					require.NoError(t, s.Backfill(ctx, 0, tc.backfill, func(k int64) int64 { return startMs + k*intervalMs }))
					bf := bfStats.Snapshot(time.Now())
					require.Equal(t, tc.backfill, bf.StepsCompleted, "Backfill returns once its steps are answered")
					require.Equal(t, tc.wantBackfillAcked, bf.SamplesAcked)
					require.Equal(t, tc.backfill*active, bf.SamplesSent)
					require.Equal(t, tc.wantBackfillLatency, int64(len(bfStats.latencies)))
				}
				limit, queued := tc.limit, int64(0)
				if limit == 0 {
					limit = (steps - tc.backfill) * active
				}
				for k := tc.backfill; k < steps && queued < limit; k++ {
					n, err := s.Enqueue(ctx, k, time.Now(), startMs+k*intervalMs, limit-queued)
					require.NoError(t, err)
					queued += n
				}
				s.Close()

				snap := stats.Snapshot(time.Now())
				require.Equal(t, tc.wantSamples, snap.SamplesSent)
				require.Equal(t, tc.wantAcked, snap.SamplesAcked)
				require.Equal(t, tc.wantSamples-tc.wantAcked, snap.SamplesFailed)
				require.Equal(t, tc.wantRetries, snap.Retries)
				require.Equal(t, tc.wantErrors, snap.StatusErrors)
				require.Zero(t, snap.NetworkErrors)
				require.Equal(t, snap.StepsSent, snap.StepsCompleted)
				require.Equal(t, tc.wantLatency, int64(len(stats.latencies)))

				rc.mu.Lock()
				defer rc.mu.Unlock()
				require.Len(t, rc.stored, int(tc.wantAcked+tc.wantBackfillAcked), "the server stored what was acknowledged")
				require.Zero(t, rc.outOfOrder, "no series got samples out of order")
				wantVersion := map[string]string{"1.0": "0.1.0", "2.0": "2.0.0"}[version]
				require.Equal(t, map[string]int{wantVersion: int(tc.wantLatency + tc.wantBackfillLatency)}, rc.versions, "every attempt in the version asked for")
				if tc.wantAcked == steps*active {
					require.Equal(t, map[string]int{"team-a": steps * 5, "team-b": steps * 5}, rc.tenants)
				}

				// Every stored sample is what the generator recomputes for its
				// series and step, and was recorded as acknowledged.
				slotOf := map[string]int{}
				for slot := range active {
					slotOf[seriesKey(gen.Labels(slot, 0))+gen.MetricName(slot)] = slot
				}
				for _, s := range rc.stored {
					slot, ok := slotOf[seriesKey(s.labels)+s.labels[0].Value]
					require.True(t, ok, "unknown series %v", s.labels)
					step := (s.ts - startMs) / intervalMs
					require.Equal(t, gen.Value(slot, 0, step), s.value)
					req := plan.RequestOf(slot)
					require.Less(t, slot-plan.Requests[req].Lo, acks.Acked(step, req))
				}
			})
		}
	}
}
