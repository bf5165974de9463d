// Package client is the gRPC client of ingesters and the pool of clients,
// one per ingester in the ring, that distributors and queriers share.
package client

import (
	"flag"
	"log/slog"
	"strings"
	"time"

	"github.com/grafana/dskit/middleware"
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/logging"
)

// Config configures the connections to ingesters.
type Config struct {
	RemoteTimeout       time.Duration `yaml:"remote_timeout"`
	MaxRecvMsgSize      int           `yaml:"grpc_max_recv_msg_size_bytes"`
	MaxSendMsgSize      int           `yaml:"grpc_max_send_msg_size_bytes"`
	HealthCheckInterval time.Duration `yaml:"health_check_interval"`
	HealthCheckTimeout  time.Duration `yaml:"health_check_timeout"`
}

// RegisterFlags registers the client flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.RemoteTimeout, "ingester.client.remote-timeout", 5*time.Second, "Time limit of one push to an ingester.")
	f.IntVar(&c.MaxRecvMsgSize, "ingester.client.grpc-max-recv-msg-size-bytes", 100<<20, "Largest gRPC message accepted from an ingester.")
	f.IntVar(&c.MaxSendMsgSize, "ingester.client.grpc-max-send-msg-size-bytes", 100<<20, "Largest gRPC message sent to an ingester.")
	f.DurationVar(&c.HealthCheckInterval, "ingester.client.health-check-interval", 15*time.Second, "How often idle ingester connections are health-checked and stale ones closed.")
	f.DurationVar(&c.HealthCheckTimeout, "ingester.client.health-check-timeout", time.Second, "Time limit of one health check.")
}

// Client is a connection to one ingester.
type Client struct {
	ingesterpb.IngesterClient
	grpc_health_v1.HealthClient
	conn *grpc.ClientConn
}

var _ ringclient.PoolClient = (*Client)(nil)

// Dial returns a client of the ingester at addr. The tenant in the context of
// each call travels in the gRPC metadata.
func Dial(cfg Config, addr string) (*Client, error) {
	conn, err := DialConn(cfg, addr)
	if err != nil {
		return nil, err
	}
	return &Client{
		IngesterClient: ingesterpb.NewIngesterClient(conn),
		HealthClient:   grpc_health_v1.NewHealthClient(conn),
		conn:           conn,
	}, nil
}

// DialConn returns a gRPC connection with the config's message size limits
// that carries the tenant of each call's context in the gRPC metadata.
func DialConn(cfg Config, addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(cfg.MaxRecvMsgSize),
			grpc.MaxCallSendMsgSize(cfg.MaxSendMsgSize),
		),
		grpc.WithChainUnaryInterceptor(middleware.ClientUserHeaderInterceptor),
		grpc.WithChainStreamInterceptor(middleware.StreamClientUserHeaderInterceptor),
	)
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// NewPool returns a pool of clients of the ingesters in r. It is a service:
// it closes the clients of ingesters that left the ring or fail health checks.
func NewPool(cfg Config, r ring.ReadRing, logger *slog.Logger, reg prometheus.Registerer) *ringclient.Pool {
	return NewPoolOf("ingester", cfg, r, func(addr string) (ringclient.PoolClient, error) {
		return Dial(cfg, addr)
	}, logger, reg)
}

// NewPoolOf returns a pool of clients, made by dial, of the instances of a
// component's ring, with health checks per cfg.
func NewPoolOf(component string, cfg Config, r ring.ReadRing, dial func(addr string) (ringclient.PoolClient, error), logger *slog.Logger, reg prometheus.Registerer) *ringclient.Pool {
	factory := ringclient.PoolAddrFunc(dial)
	clients := promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "neocortex_" + strings.ReplaceAll(component, "-", "") + "_clients",
		Help: "Open connections to " + component + "s.",
	})
	return ringclient.NewPool(component, ringclient.PoolConfig{
		CheckInterval:      cfg.HealthCheckInterval,
		HealthCheckEnabled: true,
		HealthCheckTimeout: cfg.HealthCheckTimeout,
	}, ringclient.NewRingServiceDiscovery(r), factory, clients, logging.GoKit(logger))
}
