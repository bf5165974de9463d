package distributor

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/client"
	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// slowLocalIngester is the in-process replica that answers last: it hands
// each request it is given to the test and holds it until proceed closes.
type slowLocalIngester struct {
	addr    string
	arrived chan *prompb.WriteRequest
	proceed chan struct{}
}

func (s *slowLocalIngester) Addr() string { return s.addr }

func (s *slowLocalIngester) PushWriteRequest(_ context.Context, _ string, wr *prompb.WriteRequest) error {
	s.arrived <- wr
	<-s.proceed
	return nil
}

// names returns the metric names of wr's series.
func names(wr *prompb.WriteRequest) []string {
	var ns []string
	for _, ts := range wr.Timeseries {
		ns = append(ns, ts.Labels[0].Value)
	}
	return ns
}

// TestPooledRequestOutlivesTheAnswer pushes through the HTTP handler with
// RF=3, where two remote replicas answer at once and the third, in-process,
// only after the handler has answered and a second request has been
// decoded. The third replica must still see the first request's series:
// the buffers of a request are recycled only once its last RPC has ended.
func TestPooledRequestOutlivesTheAnswer(t *testing.T) {
	local := &slowLocalIngester{addr: "local:9095", arrived: make(chan *prompb.WriteRequest, 2), proceed: make(chan struct{})}
	r := &benchRing{maxErrors: 1, instances: []ring.InstanceDesc{{Id: "local", Addr: local.addr, State: ring.ACTIVE, Timestamp: time.Now().Unix()}}}
	pool := benchClientPool{}
	for i := range 2 {
		addr := startNoopIngester(t)
		c, err := client.Dial(client.Config{MaxRecvMsgSize: 100 << 20, MaxSendMsgSize: 100 << 20}, addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		pool[addr] = c
		r.instances = append(r.instances, ring.InstanceDesc{Id: fmt.Sprintf("remote-%d", i), Addr: addr, State: ring.ACTIVE, Timestamp: time.Now().Unix()})
	}
	d := newBenchDistributor(t, r, pool)
	d.SetLocalIngester(local)
	h := d.PushHandler()

	push := func(metric string) int {
		now := time.Now().UnixMilli()
		var wr prompb.WriteRequest
		for i := range 5 {
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: metric}, {Name: "i", Value: fmt.Sprint(i)}},
				Samples: []prompb.Sample{{Timestamp: now, Value: float64(i)}},
			})
		}
		body, err := remotewrite.Encode(&wr)
		require.NoError(t, err)
		req := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body))
		req = req.WithContext(tenant.WithTenant(req.Context(), "t"))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	want := func(metric string) []string {
		names := make([]string, 5)
		for i := range names {
			names[i] = metric
		}
		return names
	}

	require.Equal(t, http.StatusNoContent, push("first_aaaaaaaaaaaa")) // quorum from the remote replicas
	first := <-local.arrived                                           // still held by the local replica
	done := make(chan int)
	go func() { done <- push("second_bbbbbbbbbbb") }()
	second := <-local.arrived // decoded while the first is still held
	require.Equal(t, want("first_aaaaaaaaaaaa"), names(first))
	require.Equal(t, want("second_bbbbbbbbbbb"), names(second))
	close(local.proceed)
	require.Equal(t, http.StatusNoContent, <-done)
}

// recordingIngester decodes every push it gets and keeps its series'
// labels and values, as a string per series.
type recordingIngester struct {
	ingesterpb.UnimplementedIngesterServer
	mu     sync.Mutex
	series []string
}

func (r *recordingIngester) Push(_ context.Context, req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(req.WriteRequest); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ts := range wr.Timeseries {
		r.series = append(r.series, fmt.Sprintf("%v %v", ts.Labels, ts.Samples))
	}
	return &ingesterpb.PushResponse{}, nil
}

func (r *recordingIngester) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.series)
	slices.Sort(out)
	return out
}

// TestEveryReplicaGetsTheRequest pushes many requests at once through the
// HTTP handler to three replicas of every series, some requests with an
// invalid series (so encoded anew) and some intact (forwarded as they
// came): every replica must get exactly the valid series of every request,
// whatever the reuse of buffers between requests.
func TestEveryReplicaGetsTheRequest(t *testing.T) {
	r := &benchRing{}
	pool := benchClientPool{}
	var ingesters []*recordingIngester
	for i := range 3 {
		ing := &recordingIngester{}
		ingesters = append(ingesters, ing)
		addr := startIngesterServer(t, ing)
		c, err := client.Dial(client.Config{MaxRecvMsgSize: 100 << 20, MaxSendMsgSize: 100 << 20}, addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		pool[addr] = c
		r.instances = append(r.instances, ring.InstanceDesc{Id: fmt.Sprintf("ingester-%d", i), Addr: addr, State: ring.ACTIVE, Timestamp: time.Now().Unix()})
	}
	d := newBenchDistributor(t, r, pool)
	h := d.PushHandler()

	now := time.Now().UnixMilli()
	var (
		want []string
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	for req := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var wr prompb.WriteRequest
			var valid []string
			for i := range 30 {
				name := fmt.Sprintf("m_%d_%d", req, i)
				if req%2 == 1 && i == 7 {
					name = "0_invalid" // a bad metric name: the request is not intact
				}
				ts := prompb.TimeSeries{
					Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "pad", Value: strings.Repeat("x", 40)}},
					Samples: []prompb.Sample{{Timestamp: now, Value: float64(req*100 + i)}},
				}
				wr.Timeseries = append(wr.Timeseries, ts)
				if name != "0_invalid" {
					valid = append(valid, fmt.Sprintf("%v %v", ts.Labels, ts.Samples))
				}
			}
			body, err := remotewrite.Encode(&wr)
			if err != nil {
				t.Error(err)
				return
			}
			hr := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body))
			hr = hr.WithContext(tenant.WithTenant(hr.Context(), "t"))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, hr)
			wantCode := http.StatusNoContent
			if req%2 == 1 {
				wantCode = http.StatusBadRequest
			}
			if rec.Code != wantCode {
				t.Errorf("request %d: status %d, want %d: %s", req, rec.Code, wantCode, rec.Body.String())
			}
			mu.Lock()
			want = append(want, valid...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(want)
	require.Len(t, want, 40*30-20)
	for i, ing := range ingesters {
		// The third replica may still be receiving after quorum.
		require.Eventually(t, func() bool { return len(ing.got()) >= len(want) }, 10*time.Second, 10*time.Millisecond, "ingester %d", i)
		require.True(t, slices.Equal(want, ing.got()), "ingester %d got other series than were sent", i)
	}
}

// TestSeriesGoToTheirReplicas pushes series through the HTTP handler to
// rings of recording gRPC ingesters, a real dskit ring each: every
// ingester must get exactly the series whose token the ring gives it,
// whether the request's replicas are looked up per series or once.
func TestSeriesGoToTheirReplicas(t *testing.T) {
	active := testInstance{tokens: 128, state: ring.ACTIVE}
	for _, tc := range []struct {
		name      string
		rf        int
		instances int
	}{
		{"five instances, RF=3: per series", 3, 5},
		{"three instances, RF=1: per series", 1, 3},
		{"three instances, RF=3: once", 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startTestRing(t, ring.Config{HeartbeatTimeout: time.Minute, ReplicationFactor: tc.rf}, slices.Repeat([]testInstance{active}, tc.instances))
			pool := benchClientPool{}
			got := map[string]*recordingIngester{} // by instance ID
			rs, err := r.GetAllHealthy(ring.Write)
			require.NoError(t, err)
			for _, inst := range rs.Instances {
				ing := &recordingIngester{}
				got[inst.Id] = ing
				c, err := client.Dial(client.Config{MaxRecvMsgSize: 100 << 20, MaxSendMsgSize: 100 << 20}, startIngesterServer(t, ing))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				pool[inst.Addr] = c // the ring's address stands for the server's
			}
			d := newBenchDistributor(t, r, pool)

			var wr prompb.WriteRequest
			want := map[string][]string{}
			now := time.Now().UnixMilli()
			for i := range 300 {
				ts := prompb.TimeSeries{
					Labels:  []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "i", Value: fmt.Sprint(i)}},
					Samples: []prompb.Sample{{Timestamp: now, Value: float64(i)}},
				}
				wr.Timeseries = append(wr.Timeseries, ts)
				set, err := r.Get(seriesToken("t", ts.Labels), ring.Write, nil, nil, nil)
				require.NoError(t, err)
				for _, inst := range set.Instances {
					want[inst.Id] = append(want[inst.Id], fmt.Sprintf("%v %v", ts.Labels, ts.Samples))
				}
			}
			body, err := remotewrite.Encode(&wr)
			require.NoError(t, err)
			hr := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body))
			hr = hr.WithContext(tenant.WithTenant(hr.Context(), "t"))
			rec := httptest.NewRecorder()
			d.PushHandler().ServeHTTP(rec, hr)
			require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())

			total := 0
			for id, ing := range got {
				slices.Sort(want[id])
				total += len(want[id])
				// A replica past quorum may still be receiving.
				require.Eventually(t, func() bool { return len(ing.got()) >= len(want[id]) }, 10*time.Second, 10*time.Millisecond, id)
				require.Equal(t, want[id], ing.got(), id)
			}
			require.Equal(t, 300*tc.rf, total)
		})
	}
}
