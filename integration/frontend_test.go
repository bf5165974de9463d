//go:build integration

package integration

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
)

// TestQueryFrontendAndScheduler runs the read path as microservices: a
// query-frontend queues range queries in a query-scheduler, from which two
// queriers pull them; the ingester (with the distributor) shares its ring
// with the queriers by gossip. Every answer through the frontend must equal
// the same query sent straight to a querier, both queriers must take part,
// and queries must go on when one querier is SIGKILLed.
func TestQueryFrontendAndScheduler(t *testing.T) {
	const (
		tenant  = "frontend-team"
		nSeries = 12
		every   = 15 * time.Second
	)
	names := []string{"ingester", "querier-1", "querier-2"}
	gossip := memberlistArgs(t, names...)
	ringArgs := func(name string) []string {
		var args []string
		for _, prefix := range ringPrefixes {
			args = append(args, kvFlags(prefix, "memberlist", "")...)
			args = append(args, "-"+prefix+"heartbeat-period=1s")
		}
		return append(args, gossip[name]...)
	}

	ing := startNeocortex(t, "ingester", append([]string{"-target=distributor,ingester",
		"-ingester.ring.instance-id=ingester", "-distributor.ingestion-rate-limit=0"}, ringArgs("ingester")...)...)
	sched := startNeocortex(t, "query-scheduler", "-target=query-scheduler")
	frontendGRPC := freePort(t)
	front := startNeocortex(t, "query-frontend", "-target=query-frontend",
		"-server.grpc-listen-port="+strconv.Itoa(frontendGRPC),
		"-frontend.scheduler-address="+sched.grpcAddr,
		"-frontend.address="+fmt.Sprintf("127.0.0.1:%d", frontendGRPC),
		// Every query must reach a querier, so that both can be seen at work.
		"-frontend.cache-results=false")
	var queriers []*neocortex
	for _, name := range names[1:] {
		queriers = append(queriers, startNeocortex(t, name, append([]string{"-target=querier",
			"-querier.scheduler-address=" + sched.grpcAddr, "-querier.id=" + name}, ringArgs(name)...)...))
	}
	for _, q := range queriers {
		eventually(t, 30*time.Second, func() bool { return activeIngesters(t, q) == 1 }, q.name+" sees the ingester")
	}

	// An hour of samples, in one request (within the head's appendable
	// window).
	now := time.Now().Truncate(every)
	first := now.Add(-time.Hour)
	req := &prompb.WriteRequest{}
	for s := range nSeries {
		ts := prompb.TimeSeries{Labels: []prompb.Label{
			{Name: "__name__", Value: "frontend_test_total"}, {Name: "job", Value: "job-" + strconv.Itoa(s%3)},
			{Name: "series", Value: strconv.Itoa(s)},
		}}
		for at := first; !at.After(now); at = at.Add(every) {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: at.UnixMilli(), Value: float64(s*1000) + float64(at.Sub(first)/every)*float64(s%5+1)})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	rw := &remotewrite.Client{URL: "http://" + ing.httpAddr + "/api/v1/push", Tenant: tenant}
	require.NoError(t, rw.Push(context.Background(), req))

	type query struct {
		q          string
		start, end time.Time
		step       time.Duration
	}
	var queries []query
	for i, q := range []string{
		"frontend_test_total",
		"sum by (job) (rate(frontend_test_total[2m]))",
		`max(frontend_test_total{job="job-1"})`,
		"count(frontend_test_total > 3000)",
	} {
		for j, step := range []time.Duration{15 * time.Second, time.Minute} {
			// Aligned to the step, so that the frontend's answer is that of
			// the same query sent straight to a querier.
			end := now.Add(-time.Duration(i+j) * time.Minute).Truncate(step)
			queries = append(queries, query{q, end.Add(-50 * time.Minute).Truncate(step), end, step})
		}
	}
	frontAPI := "http://" + front.httpAddr + "/prometheus"
	directAPI := func(n *neocortex) string { return "http://" + n.httpAddr + "/prometheus" }
	queryRangeWork := func(n *neocortex) float64 {
		return n.metric("neocortex_querier_requests_total", `endpoint="query_range"`)
	}

	// Through the frontend, several at once, until both queriers answered
	// some.
	var (
		viaFrontend  = map[int]map[string][][2]string{}
		frontTook    time.Duration // wall time of the rounds
		sent, rounds int
	)
	runAll := func() {
		results := make([]map[string][][2]string, len(queries))
		errs := make([]error, len(queries))
		var wg sync.WaitGroup
		began := time.Now()
		for i, qu := range queries {
			wg.Go(func() { results[i], errs[i] = tryQueryRange(frontAPI, tenant, qu.q, qu.start, qu.end, qu.step) })
		}
		wg.Wait()
		frontTook += time.Since(began)
		for i, qu := range queries {
			require.NoError(t, errs[i], qu.q)
			if prev, ok := viaFrontend[i]; ok {
				require.Equal(t, prev, results[i], "the frontend's answers to %s agree", qu.q)
			}
			viaFrontend[i] = results[i]
		}
		sent += len(queries)
		rounds++
	}
	for round := 0; round < 10 && (round == 0 || queryRangeWork(queriers[0]) == 0 || queryRangeWork(queriers[1]) == 0); round++ {
		runAll()
	}
	work := []float64{queryRangeWork(queriers[0]), queryRangeWork(queriers[1])}
	require.Positive(t, work[0], "querier-1 answered queries from the scheduler")
	require.Positive(t, work[1], "querier-2 answered queries from the scheduler")
	require.GreaterOrEqual(t, front.metric("neocortex_frontend_queries_total", `tenant="`+tenant+`"`), float64(sent))

	// The same queries straight to a querier.
	var directTook time.Duration
	for i, qu := range queries {
		began := time.Now()
		want := queryRange(t, directAPI(queriers[0]), tenant, qu.q, qu.start, qu.end, qu.step)
		directTook += time.Since(began)
		require.NotEmpty(t, want, qu.q)
		require.Equal(t, want, viaFrontend[i], "%s through the frontend", qu.q)
	}

	// One querier gone: the other answers everything.
	queriers[1].kill(syscall.SIGKILL)
	before := queryRangeWork(queriers[0])
	for i, qu := range queries {
		require.Equal(t, viaFrontend[i], queryRange(t, frontAPI, tenant, qu.q, qu.start, qu.end, qu.step),
			"%s through the frontend with querier-2 killed", qu.q)
	}
	require.GreaterOrEqual(t, queryRangeWork(queriers[0])-before, float64(len(queries)), "querier-1 answered them all")

	t.Logf("%d range queries through frontend and scheduler: querier-1 answered %v, querier-2 %v (query_range requests); "+
		"a round of %d concurrent queries through the frontend took %s; one query straight to a querier %s",
		sent, work[0], work[1], len(queries), (frontTook / time.Duration(rounds)).Round(time.Microsecond),
		(directTook / time.Duration(len(queries))).Round(time.Microsecond))
}
