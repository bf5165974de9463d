package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/neocortex-metrics/neocortex/pkg/distributor"
	"github.com/neocortex-metrics/neocortex/pkg/ingester"
	"github.com/neocortex-metrics/neocortex/pkg/ingester/client"
	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/logging"
	"github.com/neocortex-metrics/neocortex/pkg/querier"
	"github.com/neocortex-metrics/neocortex/pkg/server"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
	"github.com/neocortex-metrics/neocortex/pkg/validation"
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
)

func targets() []string { return []string{All, Distributor, Ingester, Querier} }

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

	runtimeConfig *runtimeconfig.Manager
	memberlistKV  *memberlist.KVInitService
	inmemoryKV    kv.Client
	queryable     *querier.IngesterQueryable
	discarded     *prometheus.CounterVec

	modules  *modules.Manager
	services map[string]services.Service
	manager  *services.Manager
}

// New builds the process for cfg. Its HTTP and gRPC listeners are bound
// here, so the addresses are known (and advertised) before anything starts.
func New(cfg Config, logger *slog.Logger) (*App, error) {
	a := &App{Cfg: cfg, Logger: logger, Registry: prometheus.NewRegistry()}
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
	m.RegisterModule(All, nil)
	deps := map[string][]string{
		Overrides:    {RuntimeCfg},
		IngesterRing: {Server, MemberlistKV},
		Ingester:     {Server, Overrides, MemberlistKV},
		Distributor:  {Server, Overrides, IngesterRing},
		Querier:      {Server, Overrides, IngesterRing},
		All:          {Distributor, Ingester, Querier},
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
	a.Logger.Info("neocortex is ready", "targets", a.Cfg.Target, "http", a.Server.HTTPAddr(), "grpc", a.Server.GRPCAddr())
	return nil
}

// Stop stops every service, dependents before their dependencies.
func (a *App) Stop() {
	if a.manager == nil {
		return
	}
	a.manager.StopAsync()
	_ = a.manager.AwaitStopped(context.Background())
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

func (a *App) initMemberlistKV() (services.Service, error) {
	if a.Cfg.Ingester.Ring.KVStore.Mock != nil {
		return nil, nil // a test's own store
	}
	if a.Cfg.Ingester.Ring.KVStore.Store == "inmemory" {
		// One process, one in-memory store: not dskit's process-wide one, so
		// that several Apps in a test never share a ring.
		c, _ := consul.NewInMemoryClient(ring.GetCodec(), logging.GoKit(a.Logger), nil)
		a.inmemoryKV = c
		a.Cfg.Ingester.Ring.KVStore.Mock = c
		return nil, nil
	}
	if !usesMemberlist(a.Cfg.Ingester.Ring.KVStore) {
		return nil, nil
	}
	a.Cfg.Memberlist.Codecs = []codec.Codec{ring.GetCodec()}
	a.Cfg.Memberlist.MetricsNamespace = "neocortex"
	a.memberlistKV = memberlist.NewKVInitService(&a.Cfg.Memberlist, logging.GoKit(a.Logger.With("component", "memberlist")), dns.NewProvider(dns.GolangResolverType, 0, logging.GoKit(a.Logger), prometheus.WrapRegistererWithPrefix("neocortex_memberlist_", a.Registry)), a.Registry)
	a.Cfg.Ingester.Ring.KVStore.MemberlistKV = a.memberlistKV.GetMemberlistKV
	return a.memberlistKV, nil
}

func usesMemberlist(c kv.Config) bool {
	return c.Store == "memberlist" || (c.Store == "multi" && (c.Multi.Primary == "memberlist" || c.Multi.Secondary == "memberlist"))
}

func (a *App) ringKV(component string) (kv.Client, error) {
	return kv.NewClient(a.Cfg.Ingester.Ring.KVStore, ring.GetCodec(),
		kv.RegistererWithKVName(prometheus.WrapRegistererWithPrefix("neocortex_", a.Registry), component),
		logging.GoKit(a.Logger.With("component", component)))
}

func (a *App) initIngesterRing() (services.Service, error) {
	store, err := a.ringKV("ingester-ring-client")
	if err != nil {
		return nil, fmt.Errorf("ring KV: %w", err)
	}
	r, err := ring.NewWithStoreClientAndStrategy(a.Cfg.Ingester.Ring.ClientConfig(), ingester.RingName, ingester.RingKey,
		store, ring.NewDefaultReplicationStrategy(), prometheus.WrapRegistererWithPrefix("neocortex_", a.Registry), logging.GoKit(a.Logger.With("component", "ring")))
	if err != nil {
		return nil, fmt.Errorf("ingester ring: %w", err)
	}
	a.Ring = r
	a.Clients = client.NewPool(a.Cfg.IngesterClient, r, a.Logger.With("component", "ingester-client"), a.Registry)
	// The pool lives as long as the ring client.
	return services.NewIdleService(
		func(ctx context.Context) error {
			if err := services.StartAndAwaitRunning(ctx, r); err != nil {
				return err
			}
			return services.StartAndAwaitRunning(ctx, a.Clients)
		},
		func(error) error {
			err1 := services.StopAndAwaitTerminated(context.Background(), a.Clients)
			err2 := services.StopAndAwaitTerminated(context.Background(), r)
			return errors.Join(err1, err2)
		}), nil
}

func (a *App) initIngester() (services.Service, error) {
	store, err := a.ringKV("ingester-lifecycler")
	if err != nil {
		return nil, fmt.Errorf("ring KV: %w", err)
	}
	addr, err := a.ingesterAddr()
	if err != nil {
		return nil, err
	}
	ing, err := ingester.New(a.Cfg.Ingester, ingester.Deps{
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

// ingesterAddr is the address this ingester advertises in the ring.
func (a *App) ingesterAddr() (string, error) {
	rc := a.Cfg.Ingester.Ring
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
		Limits:     a.Overrides,
		Ring:       a.Ring,
		Clients:    a.Clients,
		Discarded:  a.discarded,
		Logger:     a.Logger.With("component", "distributor"),
		Registerer: a.Registry,
	})
	push := a.withTenant(a.Distributor.PushHandler())
	a.Server.HTTP.Handle("POST /api/v1/push", push)
	a.Server.HTTP.Handle("POST /api/prom/push", push)
	return a.Distributor, nil
}

func (a *App) initQuerier() (services.Service, error) {
	q := &querier.IngesterQueryable{
		Ring:    a.Ring,
		Clients: a.Clients,
		Limits:  a.Overrides,
		Metrics: querier.NewFetchMetrics(a.Registry),
	}
	a.queryable = q
	api := querier.NewAPI(a.Cfg.Querier, q, q, a.Overrides, a.Logger.With("component", "querier"), a.Registry)
	api.Register(a.Server.HTTP, "/prometheus", a.withTenant)
	api.Register(a.Server.HTTP, "/api/prom", a.withTenant)
	return services.NewIdleService(nil, nil), nil
}

func (a *App) withTenant(h http.Handler) http.Handler {
	return tenant.Middleware(a.Cfg.AuthEnabled, h)
}
