#!/usr/bin/env bash
# End-to-end benchmark scenarios of issue 7 against a freshly started single
# binary (RF=1) on this machine, with tools/loadgen as the client on the same
# machine. Prints one "name: value" line per figure.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
trap 'echo "bench-e2e: failed at line $LINENO" >&2' ERR
go build -o "$work/neocortex" ./cmd/neocortex
go build -o "$work/loadgen" ./tools/loadgen
http=127.0.0.1:18180
pid=""

start_server() {
  if curl -sf "http://$http/ready" >/dev/null 2>&1; then
    echo "something already listens on $http: stop it first" >&2; exit 1
  fi
  (cd "$work" && exec ./neocortex -server.http-listen-address=127.0.0.1 -server.http-listen-port=18180 \
    -server.grpc-listen-address=127.0.0.1 -server.grpc-listen-port=19195 \
    -distributor.ingestion-rate-limit=0 -ingester.max-series-per-metric=0 -log.level=warn \
    >>"$work/server.log" 2>&1) &
  pid=$!
  for _ in $(seq 1 600); do
    curl -sf "http://$http/ready" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "server not ready" >&2; cat "$work/server.log" >&2; exit 1
}

stop_server() { kill -TERM "$pid"; wait "$pid" || true; }

rss() { awk '/^VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }

# figure NAME KEY FILE: print loadgen's KEY from FILE as NAME.
figure() { echo "$1: $(awk -v k="$2:" '$1 == k {print $2}' "$3")"; }

loadgen() { "$work/loadgen" -url "http://$http/api/v1/push" -query-url "http://$http/prometheus" -report-interval 0 -server-pid "$pid" "$@"; }

# 1. Steady ingest: 100k active series × 10 labels, 1000 series per request,
#    4 senders, one sample per series every 5s (20k samples/s). A warm-up run
#    first creates the series, so that the figures are of steady state.
rm -rf "$work/data"; start_server
loadgen -active-series 100000 -interval 5s -duration 10s -concurrency 4 -series-per-request 1000 >/dev/null 2>&1
loadgen -active-series 100000 -interval 5s -duration 60s -concurrency 4 -series-per-request 1000 >"$work/ingest.out" 2>&1
figure ingest_samples_per_second samples_per_second "$work/ingest.out"
figure ingest_server_cpu_seconds_per_million_samples server_cpu_seconds_per_million_samples "$work/ingest.out"
figure ingest_push_latency_p50_seconds latency_p50_seconds "$work/ingest.out"
figure ingest_push_latency_p99_seconds latency_p99_seconds "$work/ingest.out"
stop_server

# 2. New-series ingest: 400k series created as fast as the server takes them.
rm -rf "$work/data"; start_server
sleep 2
idle=$(rss "$pid")
loadgen -active-series 400000 -interval 1s -samples 400000 -concurrency 4 -series-per-request 1000 >"$work/new.out" 2>&1
figure new_series_samples_per_second samples_per_second "$work/new.out"
# A second sample for every series, then memory once GC has settled.
loadgen -active-series 400000 -interval 1s -samples 400000 -concurrency 4 -series-per-request 1000 >/dev/null 2>&1
sleep 15
steady=$(rss "$pid")
echo "memory_rss_bytes_400k_series: $steady"
echo "memory_rss_bytes_per_series: $((steady / 400000))"
echo "memory_rss_bytes_idle: $idle"
echo "memory_rss_bytes_per_series_above_idle: $(((steady - idle) / 400000))"

# 3. Range queries over those series: 10 minutes at a 15s step, the median
#    of 5 runs. Cold: each run's range starts 1s later, a step phase the
#    results cache has not seen. Warm: the same range again, so that the
#    cache answers all but the last minute, as on a dashboard's refresh.
#    A second between runs lets the cache store of one answer, which runs
#    after the answer is sent, finish before the next query.
now=$(date +%s)
q() { # q QUERY SHIFT: seconds for the range ending SHIFT seconds after now, or "HTTP <code>"
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H 'X-Scope-OrgID: loadgen' \
    --data-urlencode "query=$1" --data-urlencode "start=$((now + $2 - 600))" --data-urlencode "end=$((now + $2))" \
    --data-urlencode step=15 "http://$http/prometheus/api/v1/query_range" | awk '$1 != 200 {print "HTTP " $1; next} {print $2}'
  sleep 1; }
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# qs QUERY SHIFT...: the median time of the runs, or the first failure.
qs() {
  local query=$1 out; shift
  out=$(for s in "$@"; do q "$query" "$s"; done)
  if grep -q '^HTTP' <<<"$out"; then echo "failed, $(grep -m1 '^HTTP' <<<"$out")"; else median <<<"$out"; fi; }
count='count({__name__=~".+"})'
names='http_requests_total|http_request_duration_seconds_sum|http_request_duration_seconds_count|http_response_size_bytes_sum|http_requests_in_flight|grpc_server_started_total|grpc_server_handled_total|grpc_server_msg_received_total|process_cpu_seconds_total'
raw="{__name__=~\"$names\"}"
echo "query_count_400k_series_cold_seconds: $(qs "$count" 1 2 3 4 5)"
echo "query_count_400k_series_warm_seconds: $(qs "$count" 0 0 0 0 0)"
echo "query_raw_111k_series_cold_seconds: $(qs "$raw" 6 7 8 9 10)"
echo "query_raw_111k_series_warm_seconds: $(qs "$raw" 0 0 0 0 0)"

# 4. Restart with 400k series in the WAL.
stop_server
t0=$(date +%s.%N)
start_server
t1=$(date +%s.%N)
peak=$(awk '/^VmHWM/ {print $2 * 1024}' "/proc/$pid/status")
echo "restart_ready_seconds: $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')"
echo "restart_peak_rss_bytes: $peak"
echo "restart_peak_rss_over_steady: $(awk -v p="$peak" -v s="$steady" 'BEGIN {printf "%.2f", p / s}')"
stop_server

# 5. The queries of 3 over 10 minutes of data: the 400k series written every
#    15s (40 samples each in the range), the history backfilled as fast as
#    the server takes it. The raw answer is 141 MB of JSON.
rm -rf "$work/data"; start_server
now=$(date +%s)
loadgen -active-series 400000 -interval 15s -backfill 10m -duration 0 -samples 0 -concurrency 4 -series-per-request 1000 >"$work/dense.out" 2>&1
figure dense_backfill_samples_per_second backfill_samples_per_second "$work/dense.out"
echo "query_count_400k_series_dense_cold_seconds: $(qs "$count" 1 2 3 4 5)"
echo "query_count_400k_series_dense_warm_seconds: $(qs "$count" 0 0 0 0 0)"
echo "query_raw_111k_series_dense_cold_seconds: $(qs "$raw" 6 7 8 9 10)"
echo "query_raw_111k_series_dense_warm_seconds: $(qs "$raw" 0 0 0 0 0)"
stop_server

# 6. Many small tenants: 500 of 20 series each; memory per tenant above an
#    idle process, once GC has settled.
rm -rf "$work/data"; start_server
sleep 2
idle=$(rss "$pid")
loadgen -tenants "$(seq -s, -f 'tenant-%g' 1 500)" -active-series 10000 -interval 1s -samples 20000 -concurrency 4 -series-per-request 1000 >"$work/tenants.out" 2>&1
sleep 15
echo "memory_rss_bytes_per_tenant_500_tenants: $((($(rss "$pid") - idle) / 500))"
stop_server

# 7. A cluster on loopback: three ingesters with RF=3 and one distributor,
#    ring on memberlist; the distributor's CPU per million samples received.
common="-log.level=warn -ingester.ring.store=memberlist -ingester.ring.replication-factor=3 -memberlist.bind-addr=127.0.0.1 -memberlist.join=127.0.0.1:17946"
pids=()
for i in 1 2 3; do
  (cd "$work" && exec ./neocortex -target=ingester $common -memberlist.bind-port=$((17945 + i)) \
    -server.http-listen-address=127.0.0.1 -server.http-listen-port=$((18180 + i)) \
    -server.grpc-listen-address=127.0.0.1 -server.grpc-listen-port=$((19195 + i)) \
    -ingester.data-dir="$work/ingester-$i" -ingester.ring.instance-id="ingester-$i" \
    -ingester.max-series-per-metric=0 >>"$work/cluster.log" 2>&1) &
  pids+=($!)
done
(cd "$work" && exec ./neocortex -target=distributor $common -memberlist.bind-port=17950 \
  -server.http-listen-address=127.0.0.1 -server.http-listen-port=18180 \
  -server.grpc-listen-address=127.0.0.1 -server.grpc-listen-port=19195 \
  -distributor.ingestion-rate-limit=0 >>"$work/cluster.log" 2>&1) &
pid=$!
for _ in $(seq 1 600); do
  n=$(curl -sf -H 'Accept: application/json' "http://$http/ingester/ring" 2>/dev/null | grep -o '"state":"ACTIVE"' | wc -l || true)
  [ "${n:-0}" -ge 3 ] && break
  sleep 0.1
done
"$work/loadgen" -url "http://$http/api/v1/push" -report-interval 0 \
  -active-series 50000 -interval 1s -duration 5s -concurrency 4 -series-per-request 1000 >/dev/null 2>&1 # warm-up
"$work/loadgen" -url "http://$http/api/v1/push" -report-interval 0 -server-pid "$pid" \
  -active-series 50000 -interval 1s -duration 60s -concurrency 4 -series-per-request 1000 >"$work/rf3.out" 2>&1
figure rf3_distributor_samples_per_second samples_per_second "$work/rf3.out"
figure rf3_distributor_cpu_seconds_per_million_samples server_cpu_seconds_per_million_samples "$work/rf3.out"
figure rf3_push_latency_p99_seconds latency_p99_seconds "$work/rf3.out"
kill -TERM "$pid" "${pids[@]}" 2>/dev/null || true
wait "$pid" "${pids[@]}" 2>/dev/null || true
