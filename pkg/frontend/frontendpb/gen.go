// Package frontendpb holds the gRPC API of the query path, generated from
// frontend.proto: the Frontend service that queriers pull queries from (or
// deliver the results of scheduled queries to), and the Scheduler service
// between frontends, query-schedulers and queriers. It also converts between
// its HTTP messages and net/http, and dials the services.
package frontendpb

//go:generate protoc --go_out=paths=source_relative:. --go-grpc_out=paths=source_relative:. frontend.proto
