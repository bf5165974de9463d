package cache

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

type discardRedisLogs struct{}

func (discardRedisLogs) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	// go-redis logs dial failures through a global logger, to stderr.
	redis.SetLogger(discardRedisLogs{})
	// dskit's memcached client leaves its DNS resolver's loop running
	// after Stop.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/grafana/dskit/dns/miekgdns.(*Resolver).loop"))
}
