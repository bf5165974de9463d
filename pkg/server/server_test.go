package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		http, rpc int
		wantErr   bool
	}{
		{name: "defaults", http: 8080, rpc: 9095},
		{name: "free ports", http: 0, rpc: 0},
		{name: "highest port", http: 65535, rpc: 65535},
		{name: "negative HTTP port", http: -1, rpc: 9095, wantErr: true},
		{name: "HTTP port too high", http: 70000, rpc: 9095, wantErr: true},
		{name: "HTTP port just too high", http: 65536, rpc: 9095, wantErr: true},
		{name: "negative gRPC port", http: 8080, rpc: -1, wantErr: true},
		{name: "gRPC port too high", http: 8080, rpc: 70000, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&Config{HTTPListenPort: tc.http, GRPCListenPort: tc.rpc}).Validate()
			if tc.wantErr {
				require.EqualError(t, err, "listen ports must be between 0 and 65535")
				return
			}
			require.NoError(t, err)
		})
	}
}

func testConfig() Config {
	return Config{
		HTTPListenAddress:       "127.0.0.1",
		GRPCListenAddress:       "127.0.0.1",
		GRPCMaxRecvMsgSize:      1 << 20,
		GRPCMaxSendMsgSize:      1 << 20,
		GracefulShutdownTimeout: 10 * time.Second,
		HTTPReadTimeout:         10 * time.Second,
		HTTPWriteTimeout:        10 * time.Second,
	}
}

// noKeepAlive closes each connection after its request, so that no client
// goroutine outlives the test.
var noKeepAlive = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	resp, err := noKeepAlive.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// requestCount is the sample count of neocortex_request_duration_seconds for
// the given labels, 0 when the series does not exist.
func requestCount(t *testing.T, reg *prometheus.Registry, method, route, code string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "neocortex_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if got["method"] == method && got["route"] == route && got["status_code"] == code {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

func requireClosed(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		conn.Close()
	}
	require.Error(t, err, "%s still accepts connections", addr)
}

func TestServer(t *testing.T) {
	defer goleak.VerifyNone(t)

	reg := prometheus.NewRegistry()
	s := New(testConfig(), slog.New(slog.DiscardHandler), reg)
	s.HTTP.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.PathValue("name"))
	})
	s.HTTP.HandleFunc("POST /teapot", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})
	s.HTTP.HandleFunc("/legacy", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "gone", http.StatusGone)
	})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s.GRPC, hs)

	// Listen before the start binds the free ports; starting keeps them.
	require.NoError(t, s.Listen())
	httpAddr, grpcAddr := s.HTTPAddr(), s.GRPCAddr()
	for _, addr := range []string{httpAddr, grpcAddr} {
		host, port, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1", host)
		require.NotEqual(t, "0", port)
	}
	require.NotEqual(t, httpAddr, grpcAddr)

	ctx := context.Background()
	require.NoError(t, services.StartAndAwaitRunning(ctx, s))
	stopped := false
	defer func() {
		if !stopped {
			require.NoError(t, services.StopAndAwaitTerminated(ctx, s))
		}
	}()
	require.Equal(t, httpAddr, s.HTTPAddr())
	require.Equal(t, grpcAddr, s.GRPCAddr())

	t.Run("http", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			method     string
			path       string
			wantStatus int
			wantBody   string
			wantRoute  string
		}{
			{name: "route", method: http.MethodGet, path: "/hello/world", wantStatus: http.StatusOK, wantBody: "hello world", wantRoute: "GET /hello/{name}"},
			{name: "explicit status", method: http.MethodPost, path: "/teapot", wantStatus: http.StatusTeapot, wantRoute: "POST /teapot"},
			{name: "route without method", method: http.MethodDelete, path: "/legacy", wantStatus: http.StatusGone, wantBody: "gone\n", wantRoute: "/legacy"},
			{name: "not found", method: http.MethodGet, path: "/nope", wantStatus: http.StatusNotFound, wantBody: "404 page not found\n", wantRoute: "other"},
			{name: "wrong method", method: http.MethodGet, path: "/teapot", wantStatus: http.StatusMethodNotAllowed, wantBody: "Method Not Allowed\n", wantRoute: "other"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code := fmt.Sprint(tc.wantStatus)
				before := requestCount(t, reg, tc.method, tc.wantRoute, code)
				status, body := get(t, tc.method, "http://"+httpAddr+tc.path)
				require.Equal(t, tc.wantStatus, status)
				require.Equal(t, tc.wantBody, body)
				// The observation is made before the (small, unflushed)
				// response leaves the server, so it is visible now.
				require.Equal(t, before+1, requestCount(t, reg, tc.method, tc.wantRoute, code))
			})
		}
	})

	t.Run("grpc", func(t *testing.T) {
		conn, err := grpc.NewClient("passthrough:///"+grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		defer conn.Close()
		client := healthpb.NewHealthClient(conn)
		const method = "/grpc.health.v1.Health/Check"

		for _, tc := range []struct {
			name     string
			tenant   string
			wantCode codes.Code
			wantErr  string
		}{
			{name: "with tenant", tenant: "team-a", wantCode: codes.OK},
			{name: "without tenant", wantCode: codes.Unknown, wantErr: "no org id"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				if tc.tenant != "" {
					ctx = metadata.AppendToOutgoingContext(ctx, "x-scope-orgid", tc.tenant)
				}
				before := requestCount(t, reg, "gRPC", method, tc.wantCode.String())
				resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
				require.Equal(t, tc.wantCode, status.Code(err))
				if tc.wantErr != "" {
					require.Equal(t, tc.wantErr, status.Convert(err).Message())
				} else {
					require.NoError(t, err)
					require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
				}
				require.Equal(t, before+1, requestCount(t, reg, "gRPC", method, tc.wantCode.String()))
			})
		}
	})

	require.NoError(t, services.StopAndAwaitTerminated(ctx, s))
	stopped = true
	requireClosed(t, httpAddr)
	requireClosed(t, grpcAddr)
}

func TestCloseWithoutStart(t *testing.T) {
	defer goleak.VerifyNone(t)

	s := New(testConfig(), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	s.Close() // nothing bound yet: a no-op
	require.NoError(t, s.Listen())
	require.NoError(t, s.Listen()) // idempotent
	httpAddr, grpcAddr := s.HTTPAddr(), s.GRPCAddr()
	s.Close()
	requireClosed(t, httpAddr)
	requireClosed(t, grpcAddr)
}

func TestStartFailsOnBusyPort(t *testing.T) {
	defer goleak.VerifyNone(t)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port

	for _, tc := range []struct {
		name    string
		cfg     func(*Config)
		wantErr string
	}{
		{
			name:    "HTTP",
			cfg:     func(c *Config) { c.HTTPListenPort = port },
			wantErr: fmt.Sprintf("listen for HTTP: listen tcp 127.0.0.1:%d: bind: address already in use", port),
		},
		{
			name:    "gRPC",
			cfg:     func(c *Config) { c.GRPCListenPort = port },
			wantErr: fmt.Sprintf("listen for gRPC: listen tcp 127.0.0.1:%d: bind: address already in use", port),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.cfg(&cfg)
			s := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			require.Error(t, services.StartAndAwaitRunning(context.Background(), s))
			require.Equal(t, services.Failed, s.State())
			require.EqualError(t, s.FailureCase(), tc.wantErr)
			require.True(t, strings.HasPrefix(tc.wantErr, "listen for "+tc.name))
		})
	}
}
