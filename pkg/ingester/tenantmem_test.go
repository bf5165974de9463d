package ingester

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTenantHeapWhenChunksAreMapped: once a tenant's first head chunk is
// full and written to its chunks_head file, the tenant keeps a write
// buffer of ingester.tsdb_head_chunks_write_buffer_size_bytes, not
// Prometheus's 4 MiB: with many tenants, that was 4 MB of heap each.
func TestTenantHeapWhenChunksAreMapped(t *testing.T) {
	const (
		tenants = 20
		samples = 130 // the head cuts a chunk at 120
	)
	for _, tc := range []struct {
		writeBuffer int
		maxGrowth   int64 // per tenant, when its chunks are mapped
	}{
		{writeBuffer: 128 << 10, maxGrowth: 256 << 10},
		{writeBuffer: 1 << 20, maxGrowth: 1<<20 + 128<<10},
	} {
		t.Run(fmt.Sprintf("buffer=%d", tc.writeBuffer), func(t *testing.T) {
			dir := t.TempDir()
			ing := newShippingIngester(t, dir, nil, func(c *Config) {
				c.HeadChunksWriteBufferSize = tc.writeBuffer
				// The head maps full chunks to disk at each reload (1s at least).
				c.HeadCompactionInterval = 100 * time.Millisecond
			})
			defer ing.stop(t)
			ts := make([]int64, samples)
			for i := range ts {
				ts[i] = int64(i) * 15000
			}
			for i := range tenants {
				pushSeries(t, ing.Ingester, fmt.Sprintf("t%d", i), 2, ts...)
			}
			before := liveHeap()
			mapped := func() bool {
				for i := range tenants {
					files, err := os.ReadDir(filepath.Join(dir, fmt.Sprintf("t%d", i), "chunks_head"))
					if err != nil || len(files) == 0 {
						return false
					}
				}
				return true
			}
			require.Eventually(t, mapped, 20*time.Second, 50*time.Millisecond, "every tenant's full chunks written to chunks_head")
			growth := (int64(liveHeap()) - int64(before)) / tenants
			t.Logf("heap per tenant when its chunks are mapped: %d bytes", growth)
			require.Greater(t, growth, int64(tc.writeBuffer), "the buffer is allocated")
			require.Less(t, growth, tc.maxGrowth)
		})
	}
}
