package ingester

import (
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
)

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
