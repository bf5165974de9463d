package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/prompb"
)

// Generator defines the series of a run and their samples. It is a pure
// function of its parameters: the same seed, slot, generation and step always
// give the same labels and value, which is what lets verification recompute
// what was sent without remembering it. It is safe for concurrent use.
//
// The run writes ActiveSeries slots. Slot i is metric i%len(metricNames) of
// target i/len(metricNames), so a target exposes every metric name once, as
// a scraped process does. Churn replaces slots round-robin, oldest first: a
// replacement bumps the slot's generation, which changes its pod label, so the
// old series ends and a new one starts.
//
// Steps count from the run's first sample, the backfill's if there is one.
// Churn starts at the live start (WithChurnFrom): a backfill writes the
// history of the series as they are at the start, generation 0.
type Generator struct {
	seed           uint64
	active         int64
	labels         int
	churnPerMinute int64
	intervalMs     int64
	churnFrom      int64
}

// NewGenerator returns the generator of a run.
func NewGenerator(seed int64, activeSeries, labelsPerSeries, churnPerMinute int, intervalMs int64) *Generator {
	return &Generator{
		seed:           uint64(seed),
		active:         int64(activeSeries),
		labels:         labelsPerSeries,
		churnPerMinute: int64(churnPerMinute),
		intervalMs:     intervalMs,
	}
}

// WithChurnFrom returns a copy of g whose churn starts after step: every
// slot is at generation 0 up to step, and the first replacements come as
// they would at step 1 of a run starting at step. A run with a backfill of
// B steps passes B, so that the live run churns as it would without it.
func (g *Generator) WithChurnFrom(step int64) *Generator {
	c := *g
	c.churnFrom = step
	return &c
}

// metric is a metric name and whether its series count up.
type metric struct {
	name    string
	counter bool
}

// metricNames are what a Kubernetes workload's targets typically expose.
var metricNames = func() []metric {
	names := []string{
		"http_requests_total", "http_request_duration_seconds_sum", "http_request_duration_seconds_count",
		"http_response_size_bytes_sum", "http_requests_in_flight",
		"grpc_server_started_total", "grpc_server_handled_total", "grpc_server_msg_received_total",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
		"go_goroutines", "go_memstats_alloc_bytes", "go_memstats_heap_inuse_bytes",
		"go_gc_duration_seconds_sum", "go_gc_duration_seconds_count",
		"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_load1",
		"node_network_receive_bytes_total", "node_network_transmit_bytes_total",
		"node_disk_read_bytes_total", "node_disk_written_bytes_total", "node_filesystem_avail_bytes",
		"container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
		"container_network_receive_bytes_total", "kube_pod_container_status_restarts_total",
		"up", "scrape_duration_seconds", "scrape_samples_scraped", "queue_depth",
	}
	ms := make([]metric, len(names))
	for i, n := range names {
		ms[i] = metric{name: n, counter: strings.HasSuffix(n, "_total") || strings.HasSuffix(n, "_sum") || strings.HasSuffix(n, "_count")}
	}
	return ms
}()

// Label value tables; targets pick from them by hash.
var (
	apps       = []string{"checkout", "cart", "payments", "catalog", "search", "frontend", "auth", "shipping", "recommendations", "inventory", "notifications", "gateway"}
	namespaces = []string{"shop", "platform", "payments", "data", "edge", "identity"}
	clusters   = []string{"prod-eu-1", "prod-eu-2", "prod-us-1", "staging-eu-1"}
	regions    = []string{"eu-west-1", "eu-central-1", "us-east-1", "us-west-2"}
	envs       = []string{"production", "production", "production", "staging"}
	teams      = []string{"storefront", "platform", "payments", "search", "sre", "identity"}
	handlers   = []string{"/", "/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/cart", "/api/v1/products", "/api/v1/search", "/healthz", "/metrics", "/login"}
	methods    = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	codes      = []string{"200", "200", "200", "200", "201", "204", "301", "400", "404", "500", "503"}
)

// maxTargets is how many targets have distinct instance labels.
const maxTargets = 1 << 24

// podAlphabet is the alphabet Kubernetes uses for generated name suffixes.
const podAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// podSuffixSpace is len(podAlphabet)^5, the number of 5-character suffixes.
const podSuffixSpace = 27 * 27 * 27 * 27 * 27

// labelFunc gives one label's value for a slot's target and generation.
type labelFunc struct {
	name  string
	value func(g *Generator, target, slot, gen uint64) string
}

// labelPool lists the labels in the order they are added to a series until
// it has -labels-per-series. With __name__, the first two make the series
// unique: instance names the target (unique below maxTargets targets) and pod
// changes with the slot's generation.
var labelPool = []labelFunc{
	{"instance", func(_ *Generator, t, _, _ uint64) string {
		return fmt.Sprintf("10.%d.%d.%d:%d", (t>>16)&0xff, (t>>8)&0xff, t&0xff, 8080+t%3)
	}},
	{"pod", func(g *Generator, t, _, gen uint64) string {
		// 48271 is prime to 27^5, so the suffix differs for every generation
		// (until 27^5 of them): a replaced series always gets a new pod.
		n := (g.hash(t, 2) + gen*48271) % podSuffixSpace
		return g.app(t) + "-" + podName(g.hash(t, 3), 10) + "-" + podName(n, 5)
	}},
	{"job", func(g *Generator, t, _, _ uint64) string { return g.pick(apps, t, 1) }},
	{"namespace", func(g *Generator, t, _, _ uint64) string { return g.pick(namespaces, t, 4) }},
	{"cluster", func(g *Generator, t, _, _ uint64) string { return g.pick(clusters, t, 5) }},
	{"container", func(g *Generator, t, _, _ uint64) string { return g.app(t) }},
	{"node", func(g *Generator, t, _, _ uint64) string {
		h := g.hash(t, 6) % 64
		return fmt.Sprintf("ip-10-0-%d-%d.%s.compute.internal", h/8, 10+h%8*17, g.pick(regions, t, 7))
	}},
	{"region", func(g *Generator, t, _, _ uint64) string { return g.pick(regions, t, 7) }},
	{"zone", func(g *Generator, t, _, _ uint64) string {
		return g.pick(regions, t, 7) + string(rune('a'+g.hash(t, 8)%3))
	}},
	{"env", func(g *Generator, t, _, _ uint64) string { return g.pick(envs, t, 9) }},
	{"service", func(g *Generator, t, _, _ uint64) string { return g.app(t) }},
	{"team", func(g *Generator, t, _, _ uint64) string { return g.pick(teams, t, 10) }},
	{"version", func(g *Generator, t, _, _ uint64) string {
		return fmt.Sprintf("v1.%d.%d", g.hash(t, 11)%20, g.hash(t, 12)%5)
	}},
	{"endpoint", func(_ *Generator, _, _, _ uint64) string { return "http-metrics" }},
	{"image", func(g *Generator, t, _, _ uint64) string {
		return fmt.Sprintf("registry.example.com/%s/%s:v1.%d.%d", g.pick(teams, t, 10), g.app(t), g.hash(t, 11)%20, g.hash(t, 12)%5)
	}},
	{"handler", func(g *Generator, _, s, _ uint64) string { return g.pick(handlers, s, 13) }},
	{"method", func(g *Generator, _, s, _ uint64) string { return g.pick(methods, s, 14) }},
	{"code", func(g *Generator, _, s, _ uint64) string { return g.pick(codes, s, 15) }},
}

// MetricName returns the metric name of slot.
func (g *Generator) MetricName(slot int) string {
	return metricNames[slot%len(metricNames)].name
}

// IsCounter tells whether the series of slot count up (metric names ending
// in _total, _sum or _count); the others are gauges.
func (g *Generator) IsCounter(slot int) bool {
	return metricNames[slot%len(metricNames)].counter
}

// Labels returns the labels of slot at generation gen, sorted by name.
func (g *Generator) Labels(slot int, gen int64) []prompb.Label {
	target := uint64(slot / len(metricNames))
	ls := make([]prompb.Label, 0, g.labels)
	ls = append(ls, prompb.Label{Name: "__name__", Value: g.MetricName(slot)})
	for i := 0; len(ls) < g.labels; i++ {
		if i < len(labelPool) {
			lf := labelPool[i]
			ls = append(ls, prompb.Label{Name: lf.name, Value: lf.value(g, target, uint64(slot), uint64(gen))})
			continue
		}
		n := i - len(labelPool)
		ls = append(ls, prompb.Label{
			Name:  fmt.Sprintf("label_%02d", n),
			Value: "value_" + strconv.FormatUint(g.hash(target, 100+uint64(n))%50, 10),
		})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	return ls
}

// Value returns the sample of slot at generation gen for step. Counters
// start at a per-series offset and grow by a per-series increment each step;
// gauges wobble around a per-series base. Every value is a multiple of 1/4
// below 2^40, exact in a float64 and in its JSON text.
func (g *Generator) Value(slot int, gen, step int64) float64 {
	h := g.hash(uint64(slot), uint64(gen), 0x5a)
	if g.IsCounter(slot) {
		start := float64(h % (1 << 20))
		inc := float64(1+(h>>20)%400) / 4
		return start + inc*float64(step)
	}
	base := float64((h >> 8) % 100000)
	return base + float64(g.hash(h, uint64(step))%64)/4
}

// Replacements returns how many slot replacements churn has made by step.
func (g *Generator) Replacements(step int64) int64 {
	if step <= g.churnFrom {
		return 0
	}
	return g.churnPerMinute * (step - g.churnFrom) * g.intervalMs / 60000
}

// Generation returns the generation of slot at step: 0 until churn first
// replaces it.
func (g *Generator) Generation(slot int, step int64) int64 {
	r := g.Replacements(step)
	gen := r / g.active
	if int64(slot) < r%g.active {
		gen++
	}
	return gen
}

func (g *Generator) app(target uint64) string { return g.pick(apps, target, 1) }

func (g *Generator) pick(values []string, key, salt uint64) string {
	return values[g.hash(key, salt)%uint64(len(values))]
}

// hash mixes the seed with a and b (splitmix64's finalizer).
func (g *Generator) hash(a, b uint64, more ...uint64) uint64 {
	h := g.seed ^ 0x9e3779b97f4a7c15
	h = splitmix(h ^ a)
	h = splitmix(h ^ b)
	for _, m := range more {
		h = splitmix(h ^ m)
	}
	return h
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// podName spells n in the pod alphabet, width characters long.
func podName(n uint64, width int) string {
	b := make([]byte, width)
	for i := range b {
		b[i] = podAlphabet[n%uint64(len(podAlphabet))]
		n /= uint64(len(podAlphabet))
	}
	return string(b)
}
