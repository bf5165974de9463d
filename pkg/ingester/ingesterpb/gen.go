// Package ingesterpb holds the ingester's gRPC API, generated from ingester.proto.
package ingesterpb

//go:generate protoc --go_out=paths=source_relative:. --go-grpc_out=paths=source_relative:. ingester.proto
