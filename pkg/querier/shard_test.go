package querier

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/middleware"
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc"

	"github.com/neocortex-metrics/neocortex/pkg/ingester"
	"github.com/neocortex-metrics/neocortex/pkg/ingester/client"
	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
	"github.com/neocortex-metrics/neocortex/pkg/storegateway"
	sgclient "github.com/neocortex-metrics/neocortex/pkg/storegateway/client"
	"github.com/neocortex-metrics/neocortex/pkg/storegateway/storegatewaypb"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
	"github.com/neocortex-metrics/neocortex/pkg/validation"
)

func TestStripShard(t *testing.T) {
	m := func(typ labels.MatchType, name, value string) *labels.Matcher {
		return labels.MustNewMatcher(typ, name, value)
	}
	job := m(labels.MatchEqual, "job", "a")
	for _, tc := range []struct {
		name  string
		in    []*labels.Matcher
		shard Shard
		rest  []*labels.Matcher
		err   string
	}{
		{name: "none", in: []*labels.Matcher{job}, rest: []*labels.Matcher{job}},
		{name: "first", in: []*labels.Matcher{job, m(labels.MatchEqual, ShardLabel, "1_of_16")}, shard: Shard{0, 16}, rest: []*labels.Matcher{job}},
		{name: "last", in: []*labels.Matcher{m(labels.MatchEqual, ShardLabel, "16_of_16"), job}, shard: Shard{15, 16}, rest: []*labels.Matcher{job}},
		{name: "one of one", in: []*labels.Matcher{m(labels.MatchEqual, ShardLabel, "1_of_1"), job}, shard: Shard{0, 1}, rest: []*labels.Matcher{job}},
		{name: "twice, agreeing", in: []*labels.Matcher{m(labels.MatchEqual, ShardLabel, "2_of_3"), job, m(labels.MatchEqual, ShardLabel, "2_of_3")}, shard: Shard{1, 3}, rest: []*labels.Matcher{job}},
		{name: "twice, disagreeing", in: []*labels.Matcher{m(labels.MatchEqual, ShardLabel, "2_of_3"), m(labels.MatchEqual, ShardLabel, "1_of_3")}, err: "conflict"},
		{name: "index 0", in: []*labels.Matcher{m(labels.MatchEqual, ShardLabel, "0_of_3")}, err: `invalid __query_shard__ matcher __query_shard__="0_of_3": want <index>_of_<count> with 1 <= index <= count`},
		{name: "index past count", in: []*labels.Matcher{m(labels.MatchEqual, ShardLabel, "4_of_3")}, err: "1 <= index <= count"},
		{name: "count 0", in: []*labels.Matcher{m(labels.MatchEqual, ShardLabel, "0_of_0")}, err: "1 <= index <= count"},
		{name: "not numbers", in: []*labels.Matcher{m(labels.MatchEqual, ShardLabel, "a_of_b")}, err: "want <index>_of_<count>"},
		{name: "other form", in: []*labels.Matcher{m(labels.MatchEqual, ShardLabel, "1/3")}, err: "want <index>_of_<count>"},
		{name: "negative", in: []*labels.Matcher{m(labels.MatchEqual, ShardLabel, "-1_of_3")}, err: "want <index>_of_<count>"},
		{name: "regexp", in: []*labels.Matcher{m(labels.MatchRegexp, ShardLabel, "1_of_3")}, err: "only = is allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shard, rest, err := StripShard(tc.in)
			if tc.err != "" {
				require.ErrorIs(t, err, ErrInvalidShard)
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.shard, shard)
			require.Equal(t, tc.rest, rest)
			if shard.Count > 0 {
				back, err := ParseShard(shard.String())
				require.NoError(t, err)
				require.Equal(t, shard, back)
			}
		})
	}
}

func TestSelectShard(t *testing.T) {
	name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")
	shard := Shard{Index: 2, Count: 4}.Matcher()
	for _, tc := range []struct {
		name     string
		hints    *storage.SelectHints
		matchers []*labels.Matcher
		want     *storage.SelectHints
		err      string
	}{
		{name: "no shard", hints: &storage.SelectHints{Start: 5, End: 6}, matchers: []*labels.Matcher{name}, want: &storage.SelectHints{Start: 5, End: 6}},
		{name: "no hints", matchers: []*labels.Matcher{name, shard}, want: &storage.SelectHints{Start: 1, End: 9, ShardIndex: 2, ShardCount: 4}},
		{name: "hints kept", hints: &storage.SelectHints{Start: 5, End: 6, Step: 7, Func: "rate"}, matchers: []*labels.Matcher{shard, name},
			want: &storage.SelectHints{Start: 5, End: 6, Step: 7, Func: "rate", ShardIndex: 2, ShardCount: 4}},
		{name: "shard in the hints", hints: &storage.SelectHints{ShardIndex: 1, ShardCount: 2}, matchers: []*labels.Matcher{name}, want: &storage.SelectHints{ShardIndex: 1, ShardCount: 2}},
		{name: "hints and matcher agree", hints: &storage.SelectHints{ShardIndex: 2, ShardCount: 4}, matchers: []*labels.Matcher{name, shard}, want: &storage.SelectHints{ShardIndex: 2, ShardCount: 4}},
		{name: "hints and matcher disagree", hints: &storage.SelectHints{ShardIndex: 1, ShardCount: 4}, matchers: []*labels.Matcher{name, shard}, err: "conflicts"},
		{name: "bad shard in the hints", hints: &storage.SelectHints{ShardIndex: 4, ShardCount: 4}, matchers: []*labels.Matcher{name}, err: "shard index 4 of 4"},
		{name: "nothing else selects", matchers: []*labels.Matcher{shard, labels.MustNewMatcher(labels.MatchRegexp, "job", ".*")}, err: "does not match the empty string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.matchers)
			var before storage.SelectHints
			if tc.hints != nil {
				before = *tc.hints
			}
			hints, ms, _, err := selectShard(tc.hints, 1, 9, tc.matchers)
			require.Equal(t, in, tc.matchers, "the caller's matchers are left alone")
			if tc.hints != nil {
				require.Equal(t, before, *tc.hints, "the caller's hints are left alone")
			}
			if tc.err != "" {
				require.ErrorIs(t, err, ErrInvalidShard)
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, hints)
			require.Equal(t, []*labels.Matcher{name}, ms)
		})
	}
}

// shardTestSeries is how many series the push-down tests write, each
// sample at shardTestT.
const (
	shardTestSeries = 200
	shardTestT      = int64(1_700_000_000_000)
)

// shardTestSymbols is the symbol table of all shardTestLabels: with -tags
// dedupelabels, labels.FromStrings would make one per call.
var shardTestSymbols = labels.NewSymbolTable()

func shardTestLabels(i int) labels.Labels {
	b := labels.NewScratchBuilderWithSymbolTable(shardTestSymbols, 3)
	b.Add("__name__", "m")
	b.Add("i", fmt.Sprintf("%03d", i))
	b.Add("job", fmt.Sprintf("job-%d", i%7))
	return b.Labels()
}

// recorder records what an ingester or store-gateway is asked, and how
// many series it sends.
type recorder struct {
	mu       sync.Mutex
	requests []any
	sent     int
}

func (r *recorder) interceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &recordingStream{ServerStream: ss, r: r})
}

func (r *recorder) reset() (requests []any, sent int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	requests, sent = r.requests, r.sent
	r.requests, r.sent = nil, 0
	return requests, sent
}

type recordingStream struct {
	grpc.ServerStream
	r *recorder
}

func (s *recordingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	s.r.mu.Lock()
	s.r.requests = append(s.r.requests, m)
	s.r.mu.Unlock()
	return err
}

func (s *recordingStream) SendMsg(m any) error {
	n := 0
	switch m := m.(type) {
	case *ingesterpb.QueryStreamResponse:
		n = len(m.Series)
	case *ingesterpb.SeriesResponse:
		n = len(m.Series)
	case *storegatewaypb.SeriesResponse:
		n = len(m.Series)
	}
	s.r.mu.Lock()
	s.r.sent += n
	s.r.mu.Unlock()
	return s.ServerStream.SendMsg(m)
}

// serveGRPC serves register's services on a loopback port, the tenant
// taken from the gRPC metadata as the server does.
func serveGRPC(t *testing.T, rec *recorder, register func(*grpc.Server)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(middleware.ServerUserHeaderInterceptor),
		grpc.ChainStreamInterceptor(middleware.StreamServerUserHeaderInterceptor, rec.interceptor),
	)
	register(srv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func clientConfig() client.Config {
	var cfg client.Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	return cfg
}

// startIngester runs a real ingester with shardTestSeries series of tenant
// "t", served over gRPC at the returned address.
func startIngester(t *testing.T, rec *recorder) (*ingester.Ingester, string) {
	t.Helper()
	var cfg ingester.Config
	var lim limits.Limits
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	lim.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	cfg.DataDir = t.TempDir()
	cfg.Ring.InstanceID = "ingester-1"
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	reg := prometheus.NewRegistry()
	ing, err := ingester.New(cfg, ingester.Deps{
		Limits:     limits.NewOverrides(lim, nil),
		KV:         kv,
		Addr:       "127.0.0.1:1",
		Discarded:  validation.NewDiscardedSamples(reg),
		Logger:     slog.New(slog.DiscardHandler),
		Registerer: reg,
	})
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing)) })

	req := &prompb.WriteRequest{}
	for i := range shardTestSeries {
		var ls []prompb.Label
		shardTestLabels(i).Range(func(l labels.Label) { ls = append(ls, prompb.Label{Name: l.Name, Value: l.Value}) })
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Timestamp: shardTestT, Value: float64(i)}}})
	}
	buf, err := req.Marshal()
	require.NoError(t, err)
	_, err = ing.Push(tenant.WithTenant(context.Background(), "t"), &ingesterpb.PushRequest{WriteRequest: buf})
	require.NoError(t, err)

	addr := serveGRPC(t, rec, func(s *grpc.Server) { ingesterpb.RegisterIngesterServer(s, ing) })
	return ing, addr
}

// floatSample is a float sample for tsdb.CreateBlock.
type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }

// startStoreGateway runs a real store-gateway serving one block of tenant
// "t" with the shardTestSeries series, over gRPC at the returned address.
func startStoreGateway(t *testing.T, rec *recorder) (string, objstore.Bucket) {
	t.Helper()
	ctx := context.Background()
	var series []storage.Series
	for i := range shardTestSeries {
		series = append(series, storage.NewListSeries(shardTestLabels(i), []chunks.Sample{floatSample{t: shardTestT, f: float64(i)}}))
	}
	blockDir, err := tsdb.CreateBlock(series, t.TempDir(), 0, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	bkt := objstore.NewInMemBucket()
	require.NoError(t, objstore.UploadDir(ctx, log.NewNopLogger(), bkt, blockDir, "t/"+filepath.Base(blockDir)))
	idx, err := bucketindex.Build(ctx, bkt, "t", nil)
	require.NoError(t, err)
	require.NoError(t, bucketindex.WriteIndex(ctx, bkt, "t", idx))

	var cfg storegateway.Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	cfg.DataDir = t.TempDir()
	cfg.Ring.InstanceID = "sg-1"
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	r, err := ring.NewWithStoreClientAndStrategy(cfg.Ring.ClientConfig(), storegateway.RingName, storegateway.RingKey, kv, ring.NewDefaultReplicationStrategy(), prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(ctx, r))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r)) })

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	g, err := storegateway.New(cfg, storegateway.Deps{
		Bucket: objstore.WrapWithMetrics(bkt, reg, "test"), KV: kv, Ring: r, Addr: lis.Addr().String(),
		Logger: slog.New(slog.DiscardHandler), Registerer: reg,
	})
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.ChainStreamInterceptor(middleware.StreamServerUserHeaderInterceptor, rec.interceptor))
	storegatewaypb.RegisterStoreGatewayServer(srv, g)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	require.NoError(t, services.StartAndAwaitRunning(ctx, g))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), g)) })
	return lis.Addr().String(), bkt
}

// oneInstanceRing is a ring of one healthy instance, for ingesters and
// store-gateways alike.
type oneInstanceRing struct{ inst ring.InstanceDesc }

func (r oneInstanceRing) set() ring.ReplicationSet {
	return ring.ReplicationSet{Instances: []ring.InstanceDesc{r.inst}}
}
func (r oneInstanceRing) GetReplicationSetForOperation(ring.Operation) (ring.ReplicationSet, error) {
	return r.set(), nil
}
func (r oneInstanceRing) GetAllHealthy(ring.Operation) (ring.ReplicationSet, error) {
	return r.set(), nil
}
func (r oneInstanceRing) ReplicationFactor() int { return 1 }
func (r oneInstanceRing) InstancesCount() int    { return 1 }
func (r oneInstanceRing) Get(uint32, ring.Operation, []ring.InstanceDesc, []string, []string) (ring.ReplicationSet, error) {
	return r.set(), nil
}

type staticPool struct{ c ringclient.PoolClient }

func (p staticPool) GetClientForInstance(ring.InstanceDesc) (ringclient.PoolClient, error) {
	return p.c, nil
}

// selectAll returns the labels of what a Select returns, and how many
// samples.
func selectAll(t *testing.T, q storage.Querier, hints *storage.SelectHints, ms ...*labels.Matcher) ([]string, int) {
	t.Helper()
	ss := q.Select(tenant.WithTenant(context.Background(), "t"), true, hints, ms...)
	var (
		out     []string
		samples int
	)
	for ss.Next() {
		out = append(out, ss.At().Labels().String())
		it := ss.At().Iterator(nil)
		for it.Next() != chunkenc.ValNone {
			samples++
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, ss.Err())
	return out, samples
}

// requirePartition checks that the shards' series are the whole's, each in
// the shard its hash says, each once.
func requirePartition(t *testing.T, all []string, shards [][]string) {
	t.Helper()
	var union []string
	for i, s := range shards {
		for _, ls := range s {
			lset, err := labelsFromString(ls)
			require.NoError(t, err)
			require.Equal(t, uint64(i), labels.StableHash(lset)%uint64(len(shards)), "%s in shard %d of %d", ls, i+1, len(shards))
		}
		union = append(union, s...)
	}
	slices.Sort(union)
	require.Equal(t, all, union, "the shards hold every series once")
}

func labelsFromString(s string) (labels.Labels, error) {
	for i := range shardTestSeries {
		if ls := shardTestLabels(i); ls.String() == s {
			return ls, nil
		}
	}
	return labels.EmptyLabels(), fmt.Errorf("unknown series %s", s)
}

// TestShardPushDown selects each shard of the series of a real ingester
// through IngesterQueryable, over gRPC and in process, and through
// BlocksQueryable from a store-gateway: the shards partition the series,
// the ingester is asked for the shard and sends only its series, and the
// querier filters what a peer that does not know shards sends.
func TestShardPushDown(t *testing.T) {
	ingRec := &recorder{}
	ing, ingAddr := startIngester(t, ingRec)
	ingClient, err := client.Dial(clientConfig(), ingAddr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ingClient.Close() })

	realSGRec := &recorder{}
	realSGAddr, realBkt := startStoreGateway(t, realSGRec)
	realSGClient, err := sgclient.Dial(clientConfig(), realSGAddr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = realSGClient.Close() })
	realBlocks := &BlocksQueryable{
		Bucket: realBkt, Ring: oneInstanceRing{ring.InstanceDesc{Addr: realSGAddr, Id: "sg-1"}}, Clients: staticPool{realSGClient},
		Attempts: 1, Logger: slog.New(slog.DiscardHandler),
	}

	sgRec := &recorder{}
	sg := &fakeStoreGateway{}
	for i := range shardTestSeries {
		sg.series = append(sg.series, shardTestLabels(i))
	}
	sgAddr := serveGRPC(t, sgRec, func(s *grpc.Server) { storegatewaypb.RegisterStoreGatewayServer(s, sg) })
	sgc, err := sgclient.Dial(clientConfig(), sgAddr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sgc.Close() })
	bkt := objstore.NewInMemBucket()
	require.NoError(t, bucketindex.WriteIndex(context.Background(), bkt, "t", &bucketindex.Index{
		Version: bucketindex.IndexVersion,
		Blocks:  []*bucketindex.Block{{ID: ulid.MustNew(1, nil), MinTime: shardTestT - 1000, MaxTime: shardTestT + 1000}},
	}))

	ingesters := func(local LocalIngester) storage.Queryable {
		addr := ingAddr
		if local != nil {
			addr = local.Addr()
		}
		return &IngesterQueryable{Ring: oneInstanceRing{ring.InstanceDesc{Addr: addr, Id: "ingester-1"}}, Clients: staticPool{ingClient}, Local: local}
	}
	blocks := &BlocksQueryable{
		Bucket: bkt, Ring: oneInstanceRing{ring.InstanceDesc{Addr: sgAddr, Id: "sg-1"}}, Clients: staticPool{sgc},
		Attempts: 1, Logger: slog.New(slog.DiscardHandler),
	}
	name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")
	for _, tc := range []struct {
		name      string
		queryable storage.Queryable
		hints     *storage.SelectHints
		rec       *recorder // the server asked, if over gRPC
		pushDown  bool      // the server selects the shard itself
	}{
		{name: "ingester over gRPC", queryable: ingesters(nil), rec: ingRec, pushDown: true},
		{name: "ingester over gRPC, labels only", queryable: ingesters(nil), hints: &storage.SelectHints{Start: shardTestT, End: shardTestT, Func: "series"}, rec: ingRec, pushDown: true},
		{name: "ingester in process", queryable: ingesters(ing)},
		{name: "store-gateway", queryable: realBlocks, rec: realSGRec, pushDown: true},
		{name: "store-gateway, labels only", queryable: realBlocks, hints: &storage.SelectHints{Start: shardTestT, End: shardTestT, Func: "series"}, rec: realSGRec, pushDown: true},
		{name: "store-gateway, old version", queryable: blocks, rec: sgRec},
		{name: "store-gateway, old version, labels only", queryable: blocks, hints: &storage.SelectHints{Start: shardTestT, End: shardTestT, Func: "series"}, rec: sgRec},
		{name: "ingesters and blocks", queryable: &MergedQueryable{Ingesters: ingesters(ing).(*IngesterQueryable), Blocks: blocks}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := tc.queryable.Querier(shardTestT-1000, shardTestT+1000)
			require.NoError(t, err)
			defer q.Close()
			all, samples := selectAll(t, q, tc.hints, name)
			require.Len(t, all, shardTestSeries)
			if tc.hints == nil {
				require.Equal(t, shardTestSeries, samples)
			}
			if tc.rec != nil {
				tc.rec.reset()
			}
			for _, n := range []int{1, 3, 16} {
				shards := make([][]string, n)
				for i := range n {
					shards[i], _ = selectAll(t, q, tc.hints, Shard{Index: uint64(i), Count: uint64(n)}.Matcher(), name)
					if tc.rec == nil {
						continue
					}
					requests, sent := tc.rec.reset()
					require.NotEmpty(t, requests)
					for _, r := range requests {
						switch r := r.(type) {
						case *ingesterpb.QueryRequest:
							require.Equal(t, [2]uint64{uint64(i), uint64(n)}, [2]uint64{r.ShardIndex, r.ShardCount})
							require.Equal(t, ingesterpb.ToMatchers([]*labels.Matcher{name}), r.Matchers, "the shard matcher is not sent")
						case *storegatewaypb.SeriesRequest:
							require.Equal(t, [2]uint64{uint64(i), uint64(n)}, [2]uint64{r.ShardIndex, r.ShardCount})
							require.Equal(t, ingesterpb.ToMatchers([]*labels.Matcher{name}), r.Matchers, "the shard matcher is not sent")
						}
					}
					if tc.pushDown {
						require.Equal(t, len(shards[i]), sent, "the server sends the shard's series only")
					}
				}
				requirePartition(t, all, shards)
			}
		})
	}
}

// fakeStoreGateway serves one block holding series, one sample each at
// shardTestT, and answers with all of them whatever the shard: a version
// that does not know shards.
type fakeStoreGateway struct {
	storegatewaypb.UnimplementedStoreGatewayServer
	series []labels.Labels
}

func (g *fakeStoreGateway) Series(req *storegatewaypb.SeriesRequest, stream storegatewaypb.StoreGateway_SeriesServer) error {
	chk := chunkenc.NewXORChunk()
	app, err := chk.Appender()
	if err != nil {
		return err
	}
	app.Append(0, shardTestT, 1)
	resp := &storegatewaypb.SeriesResponse{}
	for _, ls := range g.series {
		s := &ingesterpb.Series{Labels: ingesterpb.ToLabels(ls)}
		if !req.SkipChunks {
			s.Chunks = []*ingesterpb.Chunk{{MinTimeMs: shardTestT, MaxTimeMs: shardTestT, Encoding: uint32(chunkenc.EncXOR), Data: chk.Bytes()}}
		}
		resp.Series = append(resp.Series, s)
	}
	if err := stream.Send(resp); err != nil {
		return err
	}
	return stream.Send(&storegatewaypb.SeriesResponse{QueriedBlocks: req.BlockIds})
}

// TestShardMatcherInPromQL runs PromQL over a real ingester: the shards'
// counts add up to the whole's, and a malformed shard matcher is a 422.
func TestShardMatcherInPromQL(t *testing.T) {
	ing, addr := startIngester(t, &recorder{})
	c, err := client.Dial(clientConfig(), addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	q := &MergedQueryable{Ingesters: &IngesterQueryable{Ring: oneInstanceRing{ring.InstanceDesc{Addr: ing.Addr(), Id: "ingester-1"}}, Clients: staticPool{c}, Local: ing}}
	api := NewAPI(testConfig(), q, nil, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	mux := http.NewServeMux()
	api.Register(mux, "/prometheus", func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(tenant.WithTenant(r.Context(), "t")))
		})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	query := func(q string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + "/prometheus/api/v1/query?" + url.Values{"query": {q}, "time": {fmt.Sprint(float64(shardTestT) / 1000)}}.Encode())
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	for _, tc := range []struct {
		query  string
		status int
		body   string
	}{
		{`count(m)`, http.StatusOK, `"200"`},
		{`count(m{__query_shard__="1_of_1"})`, http.StatusOK, `"200"`},
		{`count(m{__query_shard__="1_of_2"}) + count(m{__query_shard__="2_of_2"})`, http.StatusOK, `"200"`},
		{`count(m{__query_shard__="0_of_2"})`, http.StatusUnprocessableEntity, `invalid __query_shard__ matcher __query_shard__=\"0_of_2\": want `},
		{`count({__query_shard__="1_of_2"})`, http.StatusUnprocessableEntity, `a selector needs a matcher other than __query_shard__`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			status, body := query(tc.query)
			require.Equal(t, tc.status, status, body)
			require.Contains(t, body, tc.body)
		})
	}
	// Label lookups ignore the shard matcher.
	resp, err := srv.Client().Get(srv.URL + "/prometheus/api/v1/label/job/values?" + url.Values{"match[]": {`m{__query_shard__="1_of_16"}`}}.Encode())
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.JSONEq(t, `{"status":"success","data":["job-0","job-1","job-2","job-3","job-4","job-5","job-6"]}`, string(body))
}
