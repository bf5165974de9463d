// Package client is the gRPC client of store-gateways, the pool of clients
// queriers keep, and the sharding rule both sides agree on.
package client

import (
	"log/slog"

	"github.com/cespare/xxhash/v2"
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	ingesterclient "github.com/neocortex-metrics/neocortex/pkg/ingester/client"
	"github.com/neocortex-metrics/neocortex/pkg/storegateway/storegatewaypb"
)

// BlockKey is the ring key of a block: the store-gateways that own this
// token (RF of them) serve the block.
func BlockKey(tenant string, id ulid.ULID) uint32 {
	d := xxhash.New()
	_, _ = d.WriteString(tenant)
	_, _ = d.Write([]byte{'/'})
	_, _ = d.Write(id[:])
	return uint32(d.Sum64())
}

// SyncOp selects the store-gateways that load a block: joining ones
// included, so that they are ready when they turn ACTIVE.
var SyncOp = ring.NewOp([]ring.InstanceState{ring.JOINING, ring.ACTIVE, ring.LEAVING}, nil)

// ReadOp selects the store-gateways a querier may ask for a block.
var ReadOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, nil)

// Client is a connection to one store-gateway.
type Client struct {
	storegatewaypb.StoreGatewayClient
	grpc_health_v1.HealthClient
	conn *grpc.ClientConn
}

var _ ringclient.PoolClient = (*Client)(nil)

// Dial returns a client of the store-gateway at addr; the tenant in each
// call's context travels in the gRPC metadata. It uses the message size
// limits of the ingester client config.
func Dial(cfg ingesterclient.Config, addr string) (*Client, error) {
	conn, err := ingesterclient.DialConn(cfg, addr)
	if err != nil {
		return nil, err
	}
	return &Client{
		StoreGatewayClient: storegatewaypb.NewStoreGatewayClient(conn),
		HealthClient:       grpc_health_v1.NewHealthClient(conn),
		conn:               conn,
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// NewPool returns a pool of clients of the store-gateways in r. It is a
// service: it closes clients of instances that left or fail health checks.
func NewPool(cfg ingesterclient.Config, r ring.ReadRing, logger *slog.Logger, reg prometheus.Registerer) *ringclient.Pool {
	return ingesterclient.NewPoolOf("store-gateway", cfg, r, func(addr string) (ringclient.PoolClient, error) {
		return Dial(cfg, addr)
	}, logger, reg)
}
