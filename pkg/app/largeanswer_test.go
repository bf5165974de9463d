package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestLargeAnswerInProcess: in one process the querier hands its answers to
// the query-frontend in memory, so the gRPC message size limit of a
// separate querier does not apply to them.
func TestLargeAnswerInProcess(t *testing.T) {
	cfg := testConfig(t)
	cfg.FrontendWorker.GRPCMaxSendMsgSize = 4096 // over gRPC, a 413 for anything larger
	a := startApp(t, cfg)
	now := time.Now().Truncate(time.Second)
	var wr prompb.WriteRequest
	for i := range 200 {
		wr.Timeseries = append(wr.Timeseries, series("big_answer", map[string]string{"i": fmt.Sprint(i)},
			prompb.Sample{Timestamp: now.Add(-time.Minute).UnixMilli(), Value: float64(i)}))
	}
	require.NoError(t, pushClient(a, "t").Push(context.Background(), &wr))
	got, status := queryRange(t, a, "t", "big_answer", now.Add(-time.Minute), now, 15*time.Second)
	require.Equal(t, 200, status)
	require.Len(t, got, 200)
	for i := range 200 {
		require.Len(t, got[fmt.Sprintf(`{__name__="big_answer",i="%d"}`, i)], 5, "series %d", i)
	}
}
