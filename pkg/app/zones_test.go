package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/app"
)

// TestZoneAwareReplication runs six ingesters in three zones with RF=3 and
// zone awareness: each series lands once in every zone, so losing a whole
// zone keeps writes and reads complete.
func TestZoneAwareReplication(t *testing.T) {
	var ingesters []*app.App
	var seed []string
	zones := []string{"zone-a", "zone-a", "zone-b", "zone-b", "zone-c", "zone-c"}
	for i, zone := range zones {
		cfg := clusterConfig(t, app.Ingester, fmt.Sprintf("ingester-%d", i+1), seed)
		cfg.Ingester.Ring.ZoneAwarenessEnabled = true
		cfg.Ingester.Ring.InstanceZone = zone
		ingesters = append(ingesters, startApp(t, cfg))
		if seed == nil {
			seed = []string{fmt.Sprintf("127.0.0.1:%d", cfg.Memberlist.TCPTransport.BindPort)}
		}
	}
	frontCfg := clusterConfig(t, app.Distributor+","+app.Querier, "front", seed)
	frontCfg.Ingester.Ring.ZoneAwarenessEnabled = true
	front := startApp(t, frontCfg)
	eventually(t, 30*time.Second, func() bool { return front.Ring.InstancesCount() == 6 }, "the front sees 6 ingesters")

	ctx := context.Background()
	base := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	const nSeries = 60
	rounds := 0
	// Each push waits until every reachable replica has it (see
	// TestClusterQuorum): copies per series, one per live zone.
	copies, wantCopies := 3, 0.0
	ingested := func() float64 {
		n := 0.0
		for _, ing := range ingesters {
			n += counterValue(t, ing, "neocortex_ingester_ingested_samples_total", map[string]string{"tenant": "z"})
		}
		return n
	}
	push := func() {
		t.Helper()
		req := &prompb.WriteRequest{}
		for s := 0; s < nSeries; s++ {
			req.Timeseries = append(req.Timeseries, series("zoned", map[string]string{"s": fmt.Sprint(s)},
				prompb.Sample{Timestamp: base.Add(time.Duration(rounds) * 10 * time.Second).UnixMilli(), Value: float64(rounds)}))
		}
		require.NoError(t, pushClient(front, "z").Push(ctx, req))
		rounds++
		wantCopies += float64(nSeries * copies)
		eventually(t, 10*time.Second, func() bool { return ingested() == wantCopies }, "every live zone has the round")
	}
	for range 3 {
		push()
	}
	// Each zone holds every series once: its two ingesters' samples add up
	// to all samples pushed.
	for z := 0; z < 3; z++ {
		a, b := ingesters[2*z], ingesters[2*z+1]
		eventually(t, 10*time.Second, func() bool {
			n := counterValue(t, a, "neocortex_ingester_ingested_samples_total", map[string]string{"tenant": "z"}) +
				counterValue(t, b, "neocortex_ingester_ingested_samples_total", map[string]string{"tenant": "z"})
			return n == nSeries*3
		}, zones[2*z]+" holds one copy of every sample")
	}

	// Zone a goes dark (both ingesters unreachable, still in the ring).
	ingesters[0].Server.GRPC.Stop()
	ingesters[1].Server.GRPC.Stop()
	copies = 2
	for range 3 {
		push()
	}
	last := base.Add(time.Duration(rounds-1) * 10 * time.Second)
	got, status := queryInstant(t, front, "z", fmt.Sprintf("count_over_time(zoned[%ds])", int(last.Sub(base).Seconds())+1), last)
	require.Equal(t, 200, status)
	require.Len(t, got, nSeries)
	for k, v := range got {
		require.Equal(t, float64(rounds), v, k)
	}
}
