package distributor

import (
	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/prompb"
)

// seriesToken is the ring token of a series: xxhash64 over the tenant and
// every label name and value, each followed by a 0xff byte (not a byte of
// UTF-8 text, so no two series collide by shifting bytes between the tenant,
// a name and a value), folded to 32 bits. Changing it moves every series to
// other ingesters.
func seriesToken(tenant string, ls []prompb.Label) uint32 {
	// One pass over a stack buffer is much faster than a streaming digest
	// fed many short strings.
	var arr [1024]byte
	b := append(arr[:0], tenant...)
	b = append(b, 0xff)
	for _, l := range ls {
		b = append(b, l.Name...)
		b = append(b, 0xff)
		b = append(b, l.Value...)
		b = append(b, 0xff)
	}
	h := xxhash.Sum64(b)
	return uint32(h) ^ uint32(h>>32)
}
