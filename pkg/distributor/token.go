package distributor

import "github.com/prometheus/prometheus/prompb"

const (
	fnv32Offset = 2166136261
	fnv32Prime  = 16777619
)

// seriesToken is the ring token of a series: FNV-1a over the tenant and every
// label name and value, with separators so that no two series collide by
// shifting bytes between labels.
func seriesToken(tenant string, ls []prompb.Label) uint32 {
	h := uint32(fnv32Offset)
	h = hashString(h, tenant)
	for _, l := range ls {
		h = hashString(h, l.Name)
		h = hashString(h, l.Value)
	}
	return h
}

func hashString(h uint32, s string) uint32 {
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= fnv32Prime
	}
	h ^= 0xff // separator: not a valid byte of UTF-8 text
	h *= fnv32Prime
	return h
}
