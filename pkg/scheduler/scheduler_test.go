package scheduler

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/grafana/dskit/middleware"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/frontendpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs a scheduler with a queue limit of 2 on a loopback gRPC server
// and returns a client of it.
func start(t *testing.T) (*Scheduler, frontendpb.SchedulerClient) {
	t.Helper()
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	cfg.Queue.MaxOutstandingPerTenant = 2
	require.NoError(t, cfg.Validate())
	s := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.ChainStreamInterceptor(middleware.StreamServerUserHeaderInterceptor))
	frontendpb.RegisterSchedulerServer(srv, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	conn, err := frontendpb.Dial(lis.Addr().String(), 1<<20, 1<<20)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), s))
	t.Cleanup(func() {
		require.NoError(t, services.StopAndAwaitTerminated(context.Background(), s))
		conn.Close()
		srv.Stop()
		<-done
	})
	return s, frontendpb.NewSchedulerClient(conn)
}

func enqueue(id uint64) *frontendpb.FrontendToScheduler {
	return &frontendpb.FrontendToScheduler{
		Type:        frontendpb.FrontendToScheduler_ENQUEUE,
		QueryId:     id,
		TenantId:    "team-a",
		HttpRequest: &frontendpb.HTTPRequest{Method: "GET", Url: "/api/v1/query"},
	}
}

func TestFrontendLoop(t *testing.T) {
	s, client := start(t)
	ctx, cancel := context.WithCancel(frontendpb.StreamContext(context.Background()))
	defer cancel()
	stream, err := client.FrontendLoop(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&frontendpb.FrontendToScheduler{Type: frontendpb.FrontendToScheduler_INIT, FrontendAddress: "frontend:9095"}))
	ack, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, frontendpb.SchedulerToFrontend_OK, ack.GetStatus())

	for _, tc := range []struct {
		name       string
		msg        *frontendpb.FrontendToScheduler
		wantStatus frontendpb.SchedulerToFrontend_Status
		wantQueue  int
	}{
		{name: "enqueue", msg: enqueue(1), wantStatus: frontendpb.SchedulerToFrontend_OK, wantQueue: 1},
		{name: "same query id", msg: enqueue(1), wantStatus: frontendpb.SchedulerToFrontend_ERROR, wantQueue: 1},
		{name: "no tenant", msg: &frontendpb.FrontendToScheduler{Type: frontendpb.FrontendToScheduler_ENQUEUE, QueryId: 9}, wantStatus: frontendpb.SchedulerToFrontend_ERROR, wantQueue: 1},
		{name: "enqueue another", msg: enqueue(2), wantStatus: frontendpb.SchedulerToFrontend_OK, wantQueue: 2},
		{name: "past the limit", msg: enqueue(3), wantStatus: frontendpb.SchedulerToFrontend_TOO_MANY_REQUESTS, wantQueue: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, stream.Send(tc.msg))
			ack, err := stream.Recv()
			require.NoError(t, err)
			require.Equal(t, tc.msg.GetQueryId(), ack.GetQueryId())
			require.Equal(t, tc.wantStatus, ack.GetStatus(), ack.GetError())
			require.Equal(t, tc.wantQueue, s.queue.Len())
		})
	}

	t.Run("cancel", func(t *testing.T) {
		require.NoError(t, stream.Send(&frontendpb.FrontendToScheduler{Type: frontendpb.FrontendToScheduler_CANCEL, QueryId: 1}))
		require.Eventually(t, func() bool { return s.queue.Len() == 1 }, 5*time.Second, 10*time.Millisecond)
	})

	t.Run("frontend goes away", func(t *testing.T) {
		require.InDelta(t, 1, testutil.ToFloat64(s.metrics.frontends), 0)
		cancel()
		require.Eventually(t, func() bool { return s.queue.Len() == 0 }, 5*time.Second, 10*time.Millisecond, "its queries are dropped")
		require.Eventually(t, func() bool { return testutil.ToFloat64(s.metrics.frontends) == 0 }, 5*time.Second, 10*time.Millisecond)
	})
}

func TestFirstMessages(t *testing.T) {
	_, client := start(t)
	ctx := frontendpb.StreamContext(context.Background())

	t.Run("frontend without INIT", func(t *testing.T) {
		stream, err := client.FrontendLoop(ctx)
		require.NoError(t, err)
		require.NoError(t, stream.Send(enqueue(1)))
		_, err = stream.Recv()
		require.ErrorContains(t, err, "INIT")
	})
	t.Run("querier without id", func(t *testing.T) {
		stream, err := client.QuerierLoop(ctx)
		require.NoError(t, err)
		require.NoError(t, stream.Send(&frontendpb.QuerierToScheduler{}))
		_, err = stream.Recv()
		require.ErrorContains(t, err, "name the querier")
	})
}

func TestStopping(t *testing.T) {
	s, client := start(t)
	ctx, cancel := context.WithCancel(frontendpb.StreamContext(context.Background()))
	defer cancel()
	stream, err := client.FrontendLoop(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&frontendpb.FrontendToScheduler{Type: frontendpb.FrontendToScheduler_INIT, FrontendAddress: "frontend:9095"}))
	_, err = stream.Recv()
	require.NoError(t, err)
	require.NoError(t, stream.Send(enqueue(1)))
	ack, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, frontendpb.SchedulerToFrontend_OK, ack.GetStatus())

	// No querier: the queued query is failed and the stream closed.
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), s))
	msg, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, frontendpb.SchedulerToFrontend_SHUTTING_DOWN, msg.GetStatus())
	require.EqualValues(t, 1, msg.GetQueryId())
	_, err = stream.Recv()
	require.Error(t, err)

	// A querier is told to go.
	qs, err := client.QuerierLoop(ctx)
	require.NoError(t, err)
	require.NoError(t, qs.Send(&frontendpb.QuerierToScheduler{QuerierId: "q1"}))
	m, err := qs.Recv()
	require.NoError(t, err)
	require.Equal(t, frontendpb.SchedulerToQuerier_SHUTDOWN, m.GetType())
}
