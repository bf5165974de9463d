package app_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/app"
	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
)

func freeMemberlistPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// clusterConfig is one process of a memberlist cluster with RF=3.
func clusterConfig(t *testing.T, target, id string, join []string) *app.Config {
	cfg := testConfig(t)
	cfg.Target = strings.Split(target, ",")
	cfg.Ingester.Ring.KVStore.Store = "memberlist"
	cfg.Ingester.Ring.ReplicationFactor = 3
	cfg.Ingester.Ring.InstanceID = id
	cfg.Memberlist.TCPTransport.BindAddrs = []string{"127.0.0.1"}
	cfg.Memberlist.TCPTransport.BindPort = freeMemberlistPort(t)
	cfg.Memberlist.JoinMembers = join
	cfg.Memberlist.NodeName = id
	cfg.Memberlist.RandomizeNodeName = false
	cfg.Memberlist.GossipInterval = 50 * time.Millisecond
	cfg.Memberlist.LeaveTimeout = time.Second
	cfg.Memberlist.BroadcastTimeoutForLocalUpdatesOnShutdown = 500 * time.Millisecond
	return cfg
}

// TestClusterQuorum runs four ingesters with RF=3 and a distributor+querier
// in one test process, sharing a ring over memberlist: an ingester scaled
// down with /ingester/shutdown takes no data with it; writes succeed and
// reads are exact (each sample once) with one ingester down, and writes fail
// with a 5xx once two are down.
func TestClusterQuorum(t *testing.T) {
	first := clusterConfig(t, app.Ingester, "ingester-1", nil)
	seed := []string{fmt.Sprintf("127.0.0.1:%d", first.Memberlist.TCPTransport.BindPort)}
	ingesters := []*app.App{startApp(t, first)}
	for i := 2; i <= 4; i++ {
		ingesters = append(ingesters, startApp(t, clusterConfig(t, app.Ingester, fmt.Sprintf("ingester-%d", i), seed)))
	}
	front := startApp(t, clusterConfig(t, app.Distributor+","+app.Querier, "front", seed))
	eventually(t, 30*time.Second, func() bool { return front.Ring.InstancesCount() == 4 }, "the querier sees 4 ingesters")

	ctx := context.Background()
	rw := pushClient(front, "team")
	base := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	want := map[string][][2]float64{}
	// copies is how many replicas of each series are reachable; after a
	// push returns (at quorum) the test waits for all of them, so that the
	// next round's samples never overtake this round's on a slow replica
	// (which would refuse the older sample as out of order).
	copies, wantCopies := 3, 0.0
	ingested := func() float64 {
		n := 0.0
		for _, ing := range ingesters {
			n += counterValue(t, ing, "neocortex_ingester_ingested_samples_total", map[string]string{"tenant": "team"})
		}
		return n
	}
	push := func(round int) error {
		req := &prompb.WriteRequest{}
		ts := base.Add(time.Duration(round) * 10 * time.Second)
		for s := 0; s < 30; s++ {
			req.Timeseries = append(req.Timeseries, series("replicated", map[string]string{"s": fmt.Sprint(s)},
				prompb.Sample{Timestamp: ts.UnixMilli(), Value: float64(round*100 + s)}))
		}
		err := rw.Push(ctx, req)
		if err == nil {
			for s := 0; s < 30; s++ {
				key := fmt.Sprintf(`{__name__="replicated",s="%d"}`, s)
				want[key] = append(want[key], [2]float64{float64(ts.UnixMilli()), float64(round*100 + s)})
			}
			wantCopies += float64(30 * copies)
			eventually(t, 10*time.Second, func() bool { return ingested() == wantCopies }, "every reachable replica has the round")
		}
		return err
	}
	read := func() {
		t.Helper()
		last := base.Add(time.Duration(len(want[`{__name__="replicated",s="0"}`])-1) * 10 * time.Second)
		got, status := queryRange(t, front, "team", "replicated", base, last, 10*time.Second)
		require.Equal(t, 200, status)
		require.Equal(t, want, got)
		// Each sample once, not once per replica.
		n, _ := queryInstant(t, front, "team", "sum(count_over_time(replicated[10m]))", last)
		require.Equal(t, map[string]float64{"{}": float64(30 * len(want[`{__name__="replicated",s="0"}`]))}, n)
	}

	for r := 0; r < 5; r++ {
		require.NoError(t, push(r))
	}
	read()

	// Ingester 4 is scaled down: it leaves the ring, and every sample stays
	// readable from the others.
	resp, err := testHTTP.Post("http://"+ingesters[3].Server.HTTPAddr()+"/ingester/shutdown", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	eventually(t, 30*time.Second, func() bool { return front.Ring.InstancesCount() == 3 }, "ingester 4 left the ring")
	require.Error(t, ingesters[3].Ready())
	read()

	// Ingester 3 becomes unreachable but stays in the ring (a crash before
	// its heartbeat expires): a quorum of 2 still acknowledges every write.
	ingesters[2].Server.GRPC.Stop()
	copies = 2
	for r := 5; r < 10; r++ {
		require.NoError(t, push(r))
	}
	read()

	// Ingester 2 becomes unreachable too: with 2 of 3 replicas unavailable
	// no write can reach a quorum.
	ingesters[1].Server.GRPC.Stop()
	err = push(10)
	var rwErr *remotewrite.Error
	require.True(t, errors.As(err, &rwErr), "want an HTTP error, got %v", err)
	require.Equal(t, 5, rwErr.StatusCode/100, rwErr.Body)
	require.Contains(t, rwErr.Body, "ingester")

	// Reads still answer from the replica left of each series written since
	// the scale-down (rounds 5-9, on all three then), and say that they may
	// be incomplete: the older rounds of the series that lived on ingesters
	// 2, 3 and 4 have no replica left.
	last := base.Add(9 * 10 * time.Second)
	n, status := queryInstant(t, front, "team", "count_over_time(replicated[45s])", last)
	require.Equal(t, 200, status)
	require.Len(t, n, 30)
	for k, v := range n {
		require.Equal(t, 5.0, v, k)
	}
	resp2 := getQuery(t, front, "team", "/prometheus/api/v1/query?query=replicated&time="+fmt.Sprint(last.Unix()))
	require.Equal(t, 200, resp2.status)
	require.Len(t, resp2.body.Warnings, 1)
	require.Contains(t, resp2.body.Warnings[0], "2 of 3 ingesters failed")
}
