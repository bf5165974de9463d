package ringconfig

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/neocortex-metrics/neocortex/pkg/logging"
)

// Member says how an instance joins its ring.
type Member struct {
	// Name names the ring in metrics and logs; Key is its KV key.
	Name, Key string
	// Addr is the host:port others reach the instance's gRPC API at.
	Addr string
	KV   kv.Client
	// InitialState is the state the instance registers in: ACTIVE, or
	// JOINING when it must prepare before taking work.
	InitialState ring.InstanceState
	// TokensFile keeps the tokens across restarts ("" = not kept).
	TokensFile string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// NewLifecycler returns the lifecycler that registers an instance in the
// ring, heartbeats, leaves the ring when stopped, and — when
// auto_forget_unhealthy_period is set — removes instances whose heartbeat
// is too old, logging and counting each removal.
func (c *Config) NewLifecycler(m Member) (*ring.BasicLifecycler, error) {
	if c.ZoneAwarenessEnabled && c.InstanceZone == "" {
		return nil, fmt.Errorf("%sinstance_availability_zone must be set when zone awareness is enabled", c.prefix)
	}
	gokit := logging.GoKit(m.Logger)
	var delegate ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(m.InitialState, c.NumTokens)
	delegate = ring.NewLeaveOnStoppingDelegate(delegate, gokit)
	if m.TokensFile != "" {
		delegate = ring.NewTokensPersistencyDelegate(m.TokensFile, m.InitialState, delegate, gokit)
	}
	if c.AutoForgetUnhealthy > 0 {
		delegate = newCountingAutoForget(c.AutoForgetUnhealthy, delegate, gokit,
			promauto.With(m.Registerer).NewCounter(prometheus.CounterOpts{
				Name:        "neocortex_ring_auto_forgotten_instances_total",
				Help:        "Instances this one removed from the ring because their heartbeat was older than the auto-forget period.",
				ConstLabels: prometheus.Labels{"ring": m.Name},
			}))
	}
	lc, err := ring.NewBasicLifecycler(ring.BasicLifecyclerConfig{
		ID:               c.InstanceID,
		Addr:             m.Addr,
		Zone:             c.InstanceZone,
		HeartbeatPeriod:  c.HeartbeatPeriod,
		HeartbeatTimeout: c.HeartbeatTimeout,
		NumTokens:        c.NumTokens,
	}, m.Name, m.Key, m.KV, delegate, gokit, prometheus.WrapRegistererWithPrefix("neocortex_", m.Registerer))
	if err != nil {
		return nil, fmt.Errorf("create %s ring lifecycler: %w", m.Name, err)
	}
	return lc, nil
}

// countingAutoForget is dskit's auto-forget delegate (which removes, and
// logs, instances whose heartbeat is older than the period) that also
// counts what it removed, so that an alert can tell operators.
type countingAutoForget struct {
	*ring.AutoForgetDelegate
	forgotten prometheus.Counter
}

func newCountingAutoForget(period time.Duration, next ring.BasicLifecyclerDelegate, logger log.Logger, forgotten prometheus.Counter) *countingAutoForget {
	return &countingAutoForget{AutoForgetDelegate: ring.NewAutoForgetDelegate(period, next, logger), forgotten: forgotten}
}

// OnRingInstanceHeartbeat forgets the instances gone for too long.
func (d *countingAutoForget) OnRingInstanceHeartbeat(l *ring.BasicLifecycler, desc *ring.Desc, inst *ring.InstanceDesc) {
	before := len(desc.Ingesters)
	d.AutoForgetDelegate.OnRingInstanceHeartbeat(l, desc, inst)
	if n := before - len(desc.Ingesters); n > 0 {
		d.forgotten.Add(float64(n))
	}
}
