// Package storegatewaypb holds the store-gateway's gRPC API, generated from storegateway.proto.
package storegatewaypb

//go:generate protoc -I. -I../../ingester/ingesterpb --go_out=paths=source_relative:. --go-grpc_out=paths=source_relative:. storegateway.proto
