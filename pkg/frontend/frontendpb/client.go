package frontendpb

import (
	"context"

	"github.com/grafana/dskit/middleware"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// StreamTenant is the tenant in the gRPC metadata of the long-lived streams
// (Process, FrontendLoop, QuerierLoop). Each query on them names its own
// tenant and the servers ignore this one; it is there because the process's
// gRPC server refuses calls without a tenant.
const StreamTenant = "query-path"

// StreamContext returns the context to open a long-lived stream with.
func StreamContext(ctx context.Context) context.Context {
	return tenant.WithTenant(ctx, StreamTenant)
}

// Dial returns a connection to a frontend or scheduler at addr with the
// given message size limits. The tenant of each call's context travels in
// the gRPC metadata; calls without one fail.
func Dial(addr string, maxRecvMsgSize, maxSendMsgSize int) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxRecvMsgSize),
			grpc.MaxCallSendMsgSize(maxSendMsgSize),
		),
		grpc.WithChainUnaryInterceptor(middleware.ClientUserHeaderInterceptor),
		grpc.WithChainStreamInterceptor(middleware.StreamClientUserHeaderInterceptor),
	)
}
