// Package remotewritetest makes realistic remote-write requests and measures
// benchmarks of the write path per sample, for the benchmarks of several
// packages.
package remotewritetest

import (
	"fmt"
	"math/rand/v2"

	"github.com/prometheus/prometheus/prompb"
)

// metricNames are the metric names the benchmark series cycle through.
var metricNames = []string{
	"apiserver_request_duration_seconds_count",
	"container_cpu_usage_seconds_total",
	"container_memory_working_set_bytes",
	"container_network_receive_bytes_total",
	"container_network_transmit_bytes_total",
	"container_fs_reads_bytes_total",
	"container_fs_writes_bytes_total",
	"go_goroutines",
	"go_memstats_heap_inuse_bytes",
	"go_gc_duration_seconds_sum",
	"grpc_server_handled_total",
	"http_requests_total",
	"http_request_duration_seconds_sum",
	"http_request_duration_seconds_count",
	"kube_pod_container_status_restarts_total",
	"kube_pod_status_ready",
	"process_cpu_seconds_total",
	"process_resident_memory_bytes",
	"process_open_fds",
	"up",
}

var (
	namespaces = []string{"payments-prod", "checkout-prod", "search-platform", "observability", "identity-prod"}
	apps       = []string{"checkout-service", "payment-gateway", "search-indexer", "session-store", "frontend-web", "inventory-api", "notification-worker"}
)

// SeriesLabels returns the sorted labels of benchmark series i: its metric
// name is metricNames[i%len], its target (pod, instance, node) i/len.
// The same i always gives the same series; different i give different series.
func SeriesLabels(i int) []prompb.Label {
	target := i / len(metricNames)
	rng := rand.New(rand.NewPCG(42, uint64(target)))
	ns := namespaces[target%len(namespaces)]
	app := apps[(target/len(namespaces))%len(apps)]
	return []prompb.Label{
		{Name: "__name__", Value: metricNames[i%len(metricNames)]},
		{Name: "cluster", Value: "prod-eu-west-1-main"},
		{Name: "container", Value: app},
		{Name: "endpoint", Value: "http-metrics"},
		{Name: "instance", Value: fmt.Sprintf("10.%d.%d.%d:8080", 16+(target>>16)&0xff, (target>>8)&0xff, target&0xff)},
		{Name: "job", Value: ns + "/" + app},
		{Name: "namespace", Value: ns},
		{Name: "node", Value: fmt.Sprintf("ip-10-0-%d-%d.eu-west-1.compute.internal", (target/40)%256, (target/40/256)%256)},
		{Name: "pod", Value: fmt.Sprintf("%s-%08x-%05d", app, rng.Uint32(), target%100000)},
		{Name: "service", Value: app},
	}
}

// WriteRequest returns series first … first+n-1 with one sample each at ts.
func WriteRequest(first, n int, ts int64) *prompb.WriteRequest {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, n)}
	for j := range req.Timeseries {
		req.Timeseries[j] = prompb.TimeSeries{
			Labels:  SeriesLabels(first + j),
			Samples: []prompb.Sample{{Value: float64((first + j) % 977), Timestamp: ts}},
		}
	}
	return req
}
