package app

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.yaml.in/yaml/v3"
)

// registerRoutes adds the endpoints every process serves.
func (a *App) registerRoutes() {
	mux := a.Server.HTTP
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("GET /ready", a.ready)
	mux.HandleFunc("GET /config", a.config)
	mux.HandleFunc("GET /services", a.servicesStatus)
	if a.Ring != nil {
		mux.Handle("/ingester/ring", a.Ring)
	}
	if a.StoreGatewayRing != nil {
		mux.Handle("/store-gateway/ring", a.StoreGatewayRing)
	}
	if a.Compactor != nil {
		mux.Handle("/compactor/ring", a.Compactor.RingHandler())
		mux.Handle("POST /purger/delete_tenant", a.withTenant(http.HandlerFunc(a.Compactor.DeleteTenantHandler)))
		mux.Handle("GET /purger/delete_tenant_status", a.withTenant(http.HandlerFunc(a.Compactor.DeleteTenantStatusHandler)))
	}
	if a.Ingester != nil {
		mux.HandleFunc("POST /ingester/shutdown", a.shutdownIngester)
		mux.HandleFunc("POST /ingester/flush", a.Ingester.FlushHandler)
	}
	mux.HandleFunc("GET /{$}", a.index)
	// Go profiles, as every Go service in this field serves them.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// ready answers 200 once the process can serve, 503 before (and during
// shutdown) with the reason.
func (a *App) ready(w http.ResponseWriter, _ *http.Request) {
	if err := a.Ready(); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Ready returns nil once every service of the process runs and, when the
// process runs an ingester, the ring shows it ACTIVE.
func (a *App) Ready() error {
	var notRunning []string
	for name, s := range a.services {
		if st := s.State(); st != services.Running {
			notRunning = append(notRunning, fmt.Sprintf("%s: %s", name, st))
		}
	}
	if len(notRunning) > 0 {
		sort.Strings(notRunning)
		return fmt.Errorf("services not running: %s", strings.Join(notRunning, ", "))
	}
	if a.Ingester != nil {
		// Checked directly: the module's service and the ring follow a
		// shutdown (/ingester/shutdown) only a moment later.
		if st := a.Ingester.State(); st != services.Running {
			return fmt.Errorf("ingester is %s", st)
		}
	}
	if a.Ingester != nil && a.Ring != nil {
		id := a.Cfg.Ingester.Ring.InstanceID
		if st, err := a.Ring.GetInstanceState(id); err != nil || st != ring.ACTIVE {
			return fmt.Errorf("ingester %s is not ACTIVE in the ring yet", id)
		}
	}
	if a.StoreGateway != nil {
		id := a.Cfg.StoreGateway.Ring.InstanceID
		if st, err := a.StoreGatewayRing.GetInstanceState(id); err != nil || st != ring.ACTIVE {
			return fmt.Errorf("store-gateway %s is not ACTIVE in the ring yet", id)
		}
	}
	return nil
}

// shutdownIngester is for scaling down: the ingester leaves the ring (so
// writes go to the others), cuts its heads into blocks and ships them to
// the bucket, closes its TSDBs and stops, while the process keeps answering until it is
// terminated. /ready then answers 503.
func (a *App) shutdownIngester(w http.ResponseWriter, r *http.Request) {
	a.Logger.Info("ingester shutdown requested", "remote", r.RemoteAddr)
	a.Ingester.FlushOnShutdown()
	if err := services.StopAndAwaitTerminated(r.Context(), a.Ingester); err != nil {
		http.Error(w, "shut down ingester: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// servicesStatus lists each service of the process and its state.
func (a *App) servicesStatus(w http.ResponseWriter, _ *http.Request) {
	names := make([]string, 0, len(a.services))
	for name := range a.services {
		names = append(names, name)
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, name := range names {
		fmt.Fprintf(w, "%s: %s\n", name, a.services[name].State())
	}
}

// config prints the effective config as YAML; with ?mode=diff only the
// values that differ from the defaults, and ?mode=defaults the defaults.
func (a *App) config(w http.ResponseWriter, r *http.Request) {
	var out any = a.Cfg
	switch mode := r.URL.Query().Get("mode"); mode {
	case "":
	case "defaults", "diff":
		def, err := DefaultConfig()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if mode == "defaults" {
			out = def
			break
		}
		out, err = configDiff(def, &a.Cfg)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	default:
		http.Error(w, fmt.Sprintf("unknown mode %q: use diff or defaults", mode), http.StatusBadRequest)
		return
	}
	b, err := yaml.Marshal(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
	_, _ = w.Write(b)
}

// configDiff returns the parts of cfg that differ from def, as a YAML tree.
func configDiff(def, cfg *Config) (map[string]any, error) {
	toMap := func(c *Config) (map[string]any, error) {
		b, err := yaml.Marshal(c)
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		return m, yaml.Unmarshal(b, &m)
	}
	dm, err := toMap(def)
	if err != nil {
		return nil, err
	}
	cm, err := toMap(cfg)
	if err != nil {
		return nil, err
	}
	return diffMaps(dm, cm), nil
}

func diffMaps(def, cur map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range cur {
		dv, ok := def[k]
		if vm, isMap := v.(map[string]any); isMap {
			if dvm, ok := dv.(map[string]any); ok {
				if sub := diffMaps(dvm, vm); len(sub) > 0 {
					out[k] = sub
				}
				continue
			}
		}
		if !ok || !reflect.DeepEqual(dv, v) {
			out[k] = v
		}
	}
	return out
}

func (a *App) index(w http.ResponseWriter, _ *http.Request) {
	links := []string{"/ready", "/metrics", "/config", "/config?mode=diff", "/services"}
	if a.Ring != nil {
		links = append(links, "/ingester/ring")
	}
	if a.StoreGatewayRing != nil {
		links = append(links, "/store-gateway/ring")
	}
	if a.Compactor != nil {
		links = append(links, "/compactor/ring")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!DOCTYPE html><html><head><title>Neocortex</title></head><body><h1>Neocortex</h1><p>Targets: %s</p><ul>",
		strings.Join(slices.Clone(a.Cfg.Target), ", "))
	for _, l := range links {
		fmt.Fprintf(w, `<li><a href="%s">%s</a></li>`, l, l)
	}
	fmt.Fprint(w, "</ul></body></html>")
}
