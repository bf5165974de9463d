package bucketblock

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strings"
	"time"

	"github.com/grafana/dskit/cache"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// remoteKeyVersion starts every remote key: change it when the format of
// keys or values changes.
const remoteKeyVersion = "ncix1"

// RemoteIndexCache is an IndexCache on a dskit cache client, such as
// memcached's.
type RemoteIndexCache struct {
	client  cache.Cache
	ttl     time.Duration
	metrics cacheMetrics
}

var _ IndexCache = (*RemoteIndexCache)(nil)

// NewRemoteIndexCache returns an index cache storing items in client for
// ttl. Closing it stops client.
func NewRemoteIndexCache(client cache.Cache, ttl time.Duration, reg prometheus.Registerer) *RemoteIndexCache {
	return &RemoteIndexCache{client: client, ttl: ttl, metrics: newCacheMetrics(reg)}
}

// remoteKey returns a key that memcached accepts (at most 250 bytes with
// no space nor control character) whatever the label values in key: it
// is hashed.
func remoteKey(tenant string, block ulid.ULID, kind ItemKind, key string) string {
	sum := sha256.Sum256([]byte(key))
	var sb strings.Builder
	sb.Grow(len(remoteKeyVersion) + len(tenant) + len(kind) + 26 + 43 + 4)
	sb.WriteString(remoteKeyVersion)
	sb.WriteByte(':')
	sb.WriteString(tenant)
	sb.WriteByte(':')
	sb.WriteString(block.String())
	sb.WriteByte(':')
	sb.WriteString(string(kind))
	sb.WriteByte(':')
	sb.WriteString(base64.RawURLEncoding.EncodeToString(sum[:]))
	return sb.String()
}

// Fetch implements IndexCache.
func (c *RemoteIndexCache) Fetch(ctx context.Context, tenant string, block ulid.ULID, kind ItemKind, keys []string) map[string][]byte {
	remote := make([]string, len(keys))
	byRemote := make(map[string]string, len(keys))
	for i, k := range keys {
		remote[i] = remoteKey(tenant, block, kind, k)
		byRemote[remote[i]] = k
	}
	found := c.client.GetMulti(ctx, remote)
	hits := make(map[string][]byte, len(found))
	for rk, v := range found {
		if k, ok := byRemote[rk]; ok {
			hits[k] = v
		}
	}
	c.metrics.observe(kind, len(keys), len(hits))
	return hits
}

// Store implements IndexCache; the items are written asynchronously.
func (c *RemoteIndexCache) Store(tenant string, block ulid.ULID, kind ItemKind, items map[string][]byte) {
	data := make(map[string][]byte, len(items))
	for k, v := range items {
		data[remoteKey(tenant, block, kind, k)] = slices.Clone(v)
	}
	c.client.SetMultiAsync(data, c.ttl)
}

// Close implements IndexCache.
func (c *RemoteIndexCache) Close() error {
	c.client.Stop()
	return nil
}
