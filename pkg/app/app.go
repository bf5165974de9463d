package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/grafana/dskit/dns"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/codec"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/modules"
	"github.com/grafana/dskit/netutil"
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/grafana/dskit/runtimeconfig"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/neocortex-metrics/neocortex/pkg/compactor"
	"github.com/neocortex-metrics/neocortex/pkg/distributor"
	"github.com/neocortex-metrics/neocortex/pkg/frontend"
	"github.com/neocortex-metrics/neocortex/pkg/frontend/frontendpb"
	"github.com/neocortex-metrics/neocortex/pkg/ingester"
	"github.com/neocortex-metrics/neocortex/pkg/ingester/client"
	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/logging"
	"github.com/neocortex-metrics/neocortex/pkg/querier"
	"github.com/neocortex-metrics/neocortex/pkg/querier/worker"
	"github.com/neocortex-metrics/neocortex/pkg/ringconfig"
	"github.com/neocortex-metrics/neocortex/pkg/scheduler"
	"github.com/neocortex-metrics/neocortex/pkg/server"
	"github.com/neocortex-metrics/neocortex/pkg/storage/bucket"
	"github.com/neocortex-metrics/neocortex/pkg/storegateway"
	sgclient "github.com/neocortex-metrics/neocortex/pkg/storegateway/client"
	"github.com/neocortex-metrics/neocortex/pkg/storegateway/storegatewaypb"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
	"github.com/neocortex-metrics/neocortex/pkg/validation"
	"github.com/neocortex-metrics/neocortex/pkg/version"
)

// Module names. The user-facing ones are also -target values.
const (
	All          = "all"
	Distributor  = "distributor"
	Ingester     = "ingester"
	Querier      = "querier"
	Server       = "server"
	RuntimeCfg   = "runtime-config"
	Overrides    = "overrides"
	MemberlistKV = "memberlist-kv"
	IngesterRing = "ingester-ring"
	StoreGateway = "store-gateway"
	// StoreGatewayRing is the client of the store-gateway ring, which
	// queriers and store-gateways read.
	StoreGatewayRing = "store-gateway-ring"
	Compactor        = "compactor"
	QueryFrontend    = "query-frontend"
	QueryScheduler   = "query-scheduler"
)

// allModules are what -target=all runs. The query-scheduler is left out:
// one process needs no scheduler between its frontend and querier.
var allModules = []string{Distributor, Ingester, Querier, StoreGateway, Compactor, QueryFrontend}

func targets() []string {
	return []string{All, Distributor, Ingester, Querier, StoreGateway, Compactor, QueryFrontend, QueryScheduler}
}

func isTarget(t string) bool { return slices.Contains(targets(), t) }

// App is one process: the modules its targets need, started in dependency
// order and stopped in reverse.
type App struct {
	Cfg      Config
	Logger   *slog.Logger
	Registry *prometheus.Registry

	Server      *server.Server
	Overrides   *limits.Overrides
	Ingester    *ingester.Ingester
	Distributor *distributor.Distributor
	Ring        *ring.Ring
	Clients     *ringclient.Pool
	// StoreGateway, StoreGatewayRing and StoreGatewayClients are set when
	// the process reads or serves blocks.
	StoreGateway        *storegateway.StoreGateway
	StoreGatewayRing    *ring.Ring
	StoreGatewayClients *ringclient.Pool
	Compactor           *compactor.Compactor
	Frontend            *frontend.Frontend

	runtimeConfig *runtimeconfig.Manager
	memberlistKV  *memberlist.KVInitService
	inmemoryKV    kv.Client
	queryable     *querier.IngesterQueryable
	discarded     *prometheus.CounterVec

	buckets []objstore.Bucket // closed by Stop
	closers []io.Closer       // closed by Stop

	modules  *modules.Manager
	services map[string]services.Service
	manager  *services.Manager
}

// New builds the process for cfg. Its HTTP and gRPC listeners are bound
// here, so the addresses are known (and advertised) before anything starts.
func New(cfg Config, logger *slog.Logger) (*App, error) {
	a := &App{Cfg: cfg, Logger: logger, Registry: prometheus.NewRegistry()}
	for _, w := range cfg.Warnings() {
		logger.Warn("config: " + w)
	}
	a.Registry.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	a.discarded = validation.NewDiscardedSamples(a.Registry)

	m := modules.NewManager(logging.GoKit(logger))
	m.RegisterModule(Server, a.initServer, modules.UserInvisibleModule)
	m.RegisterModule(RuntimeCfg, a.initRuntimeConfig, modules.UserInvisibleModule)
	m.RegisterModule(Overrides, a.initOverrides, modules.UserInvisibleModule)
	m.RegisterModule(MemberlistKV, a.initMemberlistKV, modules.UserInvisibleModule)
	m.RegisterModule(IngesterRing, a.initIngesterRing, modules.UserInvisibleModule)
	m.RegisterModule(Ingester, a.initIngester)
	m.RegisterModule(Distributor, a.initDistributor)
	m.RegisterModule(Querier, a.initQuerier)
	m.RegisterModule(StoreGatewayRing, a.initStoreGatewayRing, modules.UserInvisibleModule)
	m.RegisterModule(StoreGateway, a.initStoreGateway)
	m.RegisterModule(Compactor, a.initCompactor)
	m.RegisterModule(QueryFrontend, a.initQueryFrontend)
	m.RegisterModule(QueryScheduler, a.initQueryScheduler)
	m.RegisterModule(All, nil)
	deps := map[string][]string{
		Overrides:        {RuntimeCfg},
		IngesterRing:     {Server, MemberlistKV},
		StoreGatewayRing: {Server, MemberlistKV},
		Ingester:         {Server, Overrides, MemberlistKV},
		Distributor:      {Server, Overrides, IngesterRing},
		Querier:          {Server, Overrides, IngesterRing, StoreGatewayRing},
		StoreGateway:     {Server, StoreGatewayRing},
		Compactor:        {Server, Overrides, MemberlistKV},
		QueryFrontend:    {Server, Overrides},
		QueryScheduler:   {Server},
		All:              allModules,
	}
	for mod, d := range deps {
		if err := m.AddDependency(mod, d...); err != nil {
			return nil, err
		}
	}
	a.modules = m
	svcs, err := m.InitModuleServices(cfg.Target...)
	if err != nil {
		if a.Server != nil {
			a.Server.Close()
		}
		return nil, err
	}
	a.services = svcs
	if a.Distributor != nil && a.Ingester != nil {
		a.Distributor.SetLocalIngester(a.Ingester)
	}
	if a.queryable != nil && a.Ingester != nil {
		a.queryable.Local = a.Ingester
	}
	a.registerRoutes()
	return a, nil
}

// Run starts every service and blocks until ctx ends or a service fails,
// then stops them all.
func (a *App) Run(ctx context.Context) error {
	if err := a.Start(ctx); err != nil {
		return err
	}
	failed := make(chan error, 1)
	a.manager.AddListener(services.NewManagerListener(nil, nil, func(s services.Service) {
		select {
		case failed <- s.FailureCase():
		default:
		}
	}))
	select {
	case <-ctx.Done():
	case err := <-failed:
		a.Logger.Error("service failed, shutting down", "err", err)
		a.Stop()
		return err
	}
	a.Stop()
	return nil
}

// Start starts every service and waits until they all run.
func (a *App) Start(ctx context.Context) error {
	svcs := make([]services.Service, 0, len(a.services))
	for _, s := range a.services {
		svcs = append(svcs, s)
	}
	mgr, err := services.NewManager(svcs...)
	if err != nil {
		return err
	}
	a.manager = mgr
	// Services run until Stop, not until ctx ends: their contexts derive
	// from this one, and cancelling it would stop them all at once, out of
	// dependency order.
	if err := mgr.StartAsync(context.Background()); err != nil {
		return err
	}
	if err := mgr.AwaitHealthy(ctx); err != nil {
		a.Stop()
		return fmt.Errorf("start services: %w", err)
	}
	for a.Ready() != nil {
		select {
		case <-ctx.Done():
			err := a.Ready()
			a.Stop()
			return fmt.Errorf("wait until ready: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	v := version.Get()
	a.Logger.Info("neocortex is ready", "targets", a.Cfg.Target, "http", a.Server.HTTPAddr(), "grpc", a.Server.GRPCAddr(),
		"version", v.Version, "revision", v.Revision, "labels", v.Labels)
	return nil
}

// Stop stops every service, dependents before their dependencies.
func (a *App) Stop() {
	if a.manager == nil {
		return
	}
	a.manager.StopAsync()
	_ = a.manager.AwaitStopped(context.Background())
	for _, b := range a.buckets {
		_ = b.Close()
	}
	for _, c := range a.closers {
		_ = c.Close()
	}
	for name, s := range a.services {
		if err := s.FailureCase(); err != nil && !errors.Is(err, modules.ErrStopProcess) {
			a.Logger.Error("service failed", "service", name, "err", err)
		}
	}
}

func (a *App) initServer() (services.Service, error) {
	a.Server = server.New(a.Cfg.Server, a.Logger.With("component", "server"), a.Registry)
	if err := a.Server.Listen(); err != nil {
		return nil, err
	}
	grpc_health_v1.RegisterHealthServer(a.Server.GRPC, health.NewServer())
	return a.Server, nil
}

func (a *App) initRuntimeConfig() (services.Service, error) {
	if len(a.Cfg.RuntimeConfig.LoadPath) == 0 {
		return nil, nil
	}
	a.Cfg.RuntimeConfig.Loader = limits.Loader(a.Cfg.Limits)
	m, err := runtimeconfig.New(a.Cfg.RuntimeConfig, "overrides", prometheus.WrapRegistererWithPrefix("neocortex_", a.Registry), logging.GoKit(a.Logger.With("component", "runtime-config")))
	if err != nil {
		return nil, fmt.Errorf("runtime config: %w", err)
	}
	a.runtimeConfig = m
	return m, nil
}

func (a *App) initOverrides() (services.Service, error) {
	var source limits.TenantLimitsSource
	if m := a.runtimeConfig; m != nil {
		source = func() *limits.RuntimeConfig {
			rc, _ := m.GetConfig().(*limits.RuntimeConfig)
			return rc
		}
	}
	a.Overrides = limits.NewOverrides(a.Cfg.Limits, source)
	return nil, nil
}

// ringKVConfigs are the KV store configs of every ring of the process.
func (a *App) ringKVConfigs() []*kv.Config {
	return []*kv.Config{&a.Cfg.Ingester.Ring.KVStore, &a.Cfg.StoreGateway.Ring.KVStore, &a.Cfg.Compactor.Ring.KVStore}
}

func (a *App) initMemberlistKV() (services.Service, error) {
	// One process, one in-memory store shared by its rings (each has its
	// own key): not dskit's process-wide one, so that several Apps in a
	// test never share a ring. A test may set its own store as the Mock.
	var inmemory kv.Client
	needMemberlist := false
	for _, c := range a.ringKVConfigs() {
		switch {
		case c.Mock != nil:
		case c.Store == "inmemory":
			if inmemory == nil {
				inmemory, _ = consul.NewInMemoryClient(ring.GetCodec(), logging.GoKit(a.Logger), nil)
				a.inmemoryKV = inmemory
			}
			c.Mock = inmemory
		case usesMemberlist(*c):
			needMemberlist = true
		}
	}
	if !needMemberlist {
		return nil, nil
	}
	a.Cfg.Memberlist.Codecs = []codec.Codec{ring.GetCodec()}
	a.Cfg.Memberlist.MetricsNamespace = "neocortex"
	a.memberlistKV = memberlist.NewKVInitService(&a.Cfg.Memberlist, logging.GoKit(a.Logger.With("component", "memberlist")), dns.NewProvider(dns.GolangResolverType, 0, logging.GoKit(a.Logger), prometheus.WrapRegistererWithPrefix("neocortex_memberlist_", a.Registry)), a.Registry)
	for _, c := range a.ringKVConfigs() {
		c.MemberlistKV = a.memberlistKV.GetMemberlistKV
	}
	return a.memberlistKV, nil
}

func usesMemberlist(c kv.Config) bool {
	return c.Store == "memberlist" || (c.Store == "multi" && (c.Multi.Primary == "memberlist" || c.Multi.Secondary == "memberlist"))
}

func (a *App) ringKV(c kv.Config, component string) (kv.Client, error) {
	return kv.NewClient(c, ring.GetCodec(),
		kv.RegistererWithKVName(prometheus.WrapRegistererWithPrefix("neocortex_", a.Registry), component),
		logging.GoKit(a.Logger.With("component", component)))
}

// ringClient returns a client of a ring, started and stopped with the
// pool of connections to its instances.
func (a *App) ringClient(cfg ring.Config, name, key string, newPool func(*ring.Ring) *ringclient.Pool) (*ring.Ring, *ringclient.Pool, services.Service, error) {
	store, err := a.ringKV(cfg.KVStore, name+"-ring-client")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s ring KV: %w", name, err)
	}
	r, err := ring.NewWithStoreClientAndStrategy(cfg, name, key,
		store, ring.NewDefaultReplicationStrategy(), prometheus.WrapRegistererWithPrefix("neocortex_", a.Registry), logging.GoKit(a.Logger.With("component", "ring", "ring", name)))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s ring: %w", name, err)
	}
	pool := newPool(r)
	svc := services.NewIdleService(
		func(ctx context.Context) error {
			if err := services.StartAndAwaitRunning(ctx, r); err != nil {
				return err
			}
			return services.StartAndAwaitRunning(ctx, pool)
		},
		func(error) error {
			err1 := services.StopAndAwaitTerminated(context.Background(), pool)
			err2 := services.StopAndAwaitTerminated(context.Background(), r)
			return errors.Join(err1, err2)
		})
	return r, pool, svc, nil
}

func (a *App) initIngesterRing() (services.Service, error) {
	r, pool, svc, err := a.ringClient(a.Cfg.Ingester.Ring.ClientConfig(), ingester.RingName, ingester.RingKey, func(r *ring.Ring) *ringclient.Pool {
		return client.NewPool(a.Cfg.IngesterClient, r, a.Logger.With("component", "ingester-client"), a.Registry)
	})
	if err != nil {
		return nil, err
	}
	a.Ring, a.Clients = r, pool
	return svc, nil
}

func (a *App) initStoreGatewayRing() (services.Service, error) {
	r, pool, svc, err := a.ringClient(a.Cfg.StoreGateway.Ring.ClientConfig(), storegateway.RingName, storegateway.RingKey, func(r *ring.Ring) *ringclient.Pool {
		return sgclient.NewPool(a.Cfg.IngesterClient, r, a.Logger.With("component", "store-gateway-client"), a.Registry)
	})
	if err != nil {
		return nil, err
	}
	a.StoreGatewayRing, a.StoreGatewayClients = r, pool
	return svc, nil
}

func (a *App) initStoreGateway() (services.Service, error) {
	store, err := a.ringKV(a.Cfg.StoreGateway.Ring.KVStore, "store-gateway-lifecycler")
	if err != nil {
		return nil, fmt.Errorf("store-gateway ring KV: %w", err)
	}
	addr, err := a.instanceAddr(a.Cfg.StoreGateway.Ring)
	if err != nil {
		return nil, err
	}
	bkt, err := a.bucket("store-gateway")
	if err != nil {
		return nil, err
	}
	g, err := storegateway.New(a.Cfg.StoreGateway, storegateway.Deps{
		Bucket:     bkt,
		KV:         store,
		Ring:       a.StoreGatewayRing,
		Addr:       addr,
		Logger:     a.Logger.With("component", "store-gateway"),
		Registerer: a.Registry,
	})
	if err != nil {
		return nil, err
	}
	storegatewaypb.RegisterStoreGatewayServer(a.Server.GRPC, g)
	a.StoreGateway = g
	return g, nil
}

func (a *App) initCompactor() (services.Service, error) {
	bkt, err := a.bucket("compactor")
	if err != nil {
		return nil, err
	}
	deps := compactor.Deps{
		Bucket:     bkt,
		Limits:     compactor.OverridesLimits(a.Overrides),
		Logger:     a.Logger.With("component", "compactor"),
		Registerer: a.Registry,
	}
	if a.Cfg.Compactor.ShardingEnabled {
		if deps.KV, err = a.ringKV(a.Cfg.Compactor.Ring.KVStore, "compactor-lifecycler"); err != nil {
			return nil, fmt.Errorf("compactor ring KV: %w", err)
		}
		if deps.Addr, err = a.instanceAddr(a.Cfg.Compactor.Ring); err != nil {
			return nil, err
		}
	}
	c, err := compactor.New(a.Cfg.Compactor, deps)
	if err != nil {
		return nil, err
	}
	a.Compactor = c
	return c, nil
}

// bucket returns a client of the bucket for a component; Stop closes it.
func (a *App) bucket(component string) (objstore.InstrumentedBucket, error) {
	b, err := bucket.New(context.Background(), a.Cfg.Storage, component, a.Logger.With("component", component), a.Registry)
	if err != nil {
		return nil, err
	}
	a.buckets = append(a.buckets, b)
	return b, nil
}

func (a *App) initIngester() (services.Service, error) {
	store, err := a.ringKV(a.Cfg.Ingester.Ring.KVStore, "ingester-lifecycler")
	if err != nil {
		return nil, fmt.Errorf("ring KV: %w", err)
	}
	addr, err := a.instanceAddr(a.Cfg.Ingester.Ring)
	if err != nil {
		return nil, err
	}
	bkt, err := a.bucket("ingester")
	if err != nil {
		return nil, err
	}
	ing, err := ingester.New(a.Cfg.Ingester, ingester.Deps{
		Bucket:     bkt,
		Limits:     a.Overrides,
		KV:         store,
		Addr:       addr,
		Discarded:  a.discarded,
		Logger:     a.Logger.With("component", "ingester"),
		Registerer: a.Registry,
	})
	if err != nil {
		return nil, err
	}
	ingesterpb.RegisterIngesterServer(a.Server.GRPC, ing)
	a.Ingester = ing
	return ing, nil
}

// instanceAddr is the address an instance advertises in its ring.
func (a *App) instanceAddr(rc ringconfig.Config) (string, error) {
	host := rc.InstanceAddr
	if host == "" {
		if h := a.Cfg.Server.GRPCListenAddress; h != "" && h != "0.0.0.0" && h != "::" {
			host = h
		} else if rc.KVStore.Store == "inmemory" {
			host = "127.0.0.1" // the ring is this process's own
		} else if ip, err := netutil.GetFirstAddressOf([]string{"eth0", "en0"}, logging.GoKit(a.Logger), false); err == nil {
			host = ip
		} else {
			host = "127.0.0.1"
		}
	}
	port := rc.InstancePort
	if port == 0 {
		_, p, err := net.SplitHostPort(a.Server.GRPCAddr())
		if err != nil {
			return "", err
		}
		port, _ = strconv.Atoi(p)
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

func (a *App) initDistributor() (services.Service, error) {
	a.Distributor = distributor.New(a.Cfg.Distributor, distributor.Deps{
		Limits:            a.Overrides,
		Ring:              a.Ring,
		RingZoneAwareness: a.Cfg.Ingester.Ring.ZoneAwarenessEnabled,
		Clients:           a.Clients,
		Discarded:         a.discarded,
		Logger:            a.Logger.With("component", "distributor"),
		Registerer:        a.Registry,
	})
	push := a.withTenant(a.Distributor.PushHandler())
	a.Server.HTTP.Handle("POST /api/v1/push", push)
	a.Server.HTTP.Handle("POST /api/prom/push", push)
	return a.Distributor, nil
}

func (a *App) initQuerier() (services.Service, error) {
	metrics := querier.NewFetchMetrics(a.Registry)
	q := &querier.IngesterQueryable{
		Ring:    a.Ring,
		Clients: a.Clients,
		Limits:  a.Overrides,
		Metrics: metrics,
	}
	a.queryable = q
	bkt, err := a.bucket("querier")
	if err != nil {
		return nil, err
	}
	merged := &querier.MergedQueryable{
		Ingesters: q,
		Blocks: &querier.BlocksQueryable{
			Bucket:   bkt,
			Ring:     a.StoreGatewayRing,
			Clients:  a.StoreGatewayClients,
			Limits:   a.Overrides,
			Metrics:  metrics,
			IndexTTL: a.Cfg.Querier.BucketIndexCacheTTL,
			Attempts: a.Cfg.Querier.StoreGatewayAttempts,
			Logger:   a.Logger.With("component", "querier"),
		},
		QueryIngestersWithin: a.Cfg.Querier.QueryIngestersWithin,
		QueryStoreAfter:      a.Cfg.Querier.QueryStoreAfter,
	}
	api := querier.NewAPI(a.Cfg.Querier, merged, q, a.Overrides, a.Logger.With("component", "querier"), a.Registry)
	// With a query-frontend in the process, it owns the API paths and the
	// querier answers only what it pulls from the frontend's queue.
	local := a.hasTarget(QueryFrontend)
	if !local {
		api.Register(a.Server.HTTP, "/prometheus", a.withTenant)
		api.Register(a.Server.HTTP, "/api/prom", a.withTenant)
	}
	wcfg := a.Cfg.FrontendWorker
	if !local && len(wcfg.FrontendAddress) == 0 && len(wcfg.SchedulerAddress) == 0 {
		return services.NewIdleService(nil, nil), nil
	}
	mux := http.NewServeMux()
	api.Register(mux, "/prometheus", a.withTenant)
	api.Register(mux, "/api/prom", a.withTenant)
	w := worker.New(wcfg, mux, a.Logger.With("component", "querier-worker"), a.Registry)
	if local {
		// Without addresses, it pulls from the frontend in this process,
		// in memory.
		w.WithLocalFrontend(func() frontendpb.FrontendServer {
			if a.Frontend == nil {
				return nil
			}
			return a.Frontend
		})
	}
	return w, nil
}

// localQuerier reports whether the query-frontend's queries are answered
// by the querier in this process, with nothing between them.
func (a *App) localQuerier() bool {
	w := a.Cfg.FrontendWorker
	return a.hasTarget(QueryFrontend) && a.hasTarget(Querier) && len(a.Cfg.Frontend.SchedulerAddress) == 0 &&
		len(w.FrontendAddress) == 0 && len(w.SchedulerAddress) == 0
}

// hasTarget reports whether the process runs the module, itself or as
// part of all.
func (a *App) hasTarget(module string) bool { return a.Cfg.runs(module) }

func (a *App) initQueryFrontend() (services.Service, error) {
	cfg := a.Cfg.Frontend
	if len(cfg.SchedulerAddress) > 0 && cfg.Address == "" {
		addr, err := a.instanceAddr(ringconfig.Config{})
		if err != nil {
			return nil, err
		}
		cfg.Address = addr
	}
	if a.localQuerier() {
		cfg.LocalQuerierCPUs = runtime.GOMAXPROCS(0)
	}
	f, err := frontend.New(cfg, a.Logger.With("component", "query-frontend"), a.Registry)
	if err != nil {
		return nil, err
	}
	frontendpb.RegisterFrontendServer(a.Server.GRPC, f)
	f.Register(a.Server.HTTP, "/prometheus", a.withTenant)
	f.Register(a.Server.HTTP, "/api/prom", a.withTenant)
	a.closers = append(a.closers, f)
	a.Frontend = f
	return f, nil
}

func (a *App) initQueryScheduler() (services.Service, error) {
	s := scheduler.New(a.Cfg.QueryScheduler, a.Logger.With("component", "query-scheduler"), a.Registry)
	frontendpb.RegisterSchedulerServer(a.Server.GRPC, s)
	return s, nil
}

func (a *App) withTenant(h http.Handler) http.Handler {
	return tenant.Middleware(a.Cfg.AuthEnabled, h)
}
