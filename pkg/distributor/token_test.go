package distributor

import (
	"github.com/cespare/xxhash/v2"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

func lbls(kv ...string) []prompb.Label {
	out := make([]prompb.Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// TestSeriesTokenGolden pins the hash: a change would move every series to
// other ingesters in the ring, so it must never happen by accident.
func TestSeriesTokenGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tenant string
		labels []prompb.Label
		want   uint32
	}{
		{name: "series", tenant: "team-a", labels: lbls("__name__", "up", "job", "api"), want: 0xbfb6702a},
		// Only the separator after the empty tenant is hashed.
		{name: "no tenant, no labels", tenant: "", labels: nil, want: 0x33683436},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, seriesToken(tc.tenant, tc.labels))
		})
	}
}

// TestSeriesTokenDefinition checks the documented definition: xxhash64 over
// the tenant and each label name and value, each followed by a 0xff byte,
// with both halves XORed.
func TestSeriesTokenDefinition(t *testing.T) {
	for _, tc := range []struct {
		tenant string
		labels []prompb.Label
	}{
		{tenant: "team-a", labels: lbls("__name__", "up", "job", "api")},
		{tenant: "anonymous", labels: lbls("__name__", "http_requests_total", "code", "200", "path", "/a/b", "empty", "")},
		{tenant: "日本", labels: lbls("ключ", "значение")},
	} {
		t.Run(tc.tenant, func(t *testing.T) {
			b := []byte(tc.tenant + "\xff")
			for _, l := range tc.labels {
				b = append(b, l.Name+"\xff"+l.Value+"\xff"...)
			}
			h := xxhash.Sum64(b)
			require.Equal(t, uint32(h)^uint32(h>>32), seriesToken(tc.tenant, tc.labels))
		})
	}
}

func TestSeriesTokenDeterministic(t *testing.T) {
	ls := lbls("__name__", "up", "instance", "h:9090", "job", "api")
	want := seriesToken("team-a", ls)
	for range 3 {
		// A copy, so that nothing depends on the slice's identity.
		require.Equal(t, want, seriesToken("team-a", append([]prompb.Label(nil), ls...)))
	}
}

func TestSeriesTokenDiffers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tenantA string
		labelsA []prompb.Label
		tenantB string
		labelsB []prompb.Label
	}{
		{
			name:    "by tenant",
			tenantA: "team-a", labelsA: lbls("__name__", "up"),
			tenantB: "team-b", labelsB: lbls("__name__", "up"),
		},
		{
			name:    "byte moved between label name and value",
			tenantA: "t", labelsA: lbls("a", "bc"),
			tenantB: "t", labelsB: lbls("ab", "c"),
		},
		{
			name:    "byte moved between tenant and label name",
			tenantA: "ta", labelsA: lbls("b", "c"),
			tenantB: "t", labelsB: lbls("ab", "c"),
		},
		{
			name:    "byte moved between label value and next name",
			tenantA: "t", labelsA: lbls("a", "bc", "d", "e"),
			tenantB: "t", labelsB: lbls("a", "b", "cd", "e"),
		},
		{
			name:    "empty label versus no label",
			tenantA: "t", labelsA: lbls("a", "b", "c", ""),
			tenantB: "t", labelsB: lbls("a", "b"),
		},
		{
			name:    "by value",
			tenantA: "t", labelsA: lbls("__name__", "up", "job", "api"),
			tenantB: "t", labelsB: lbls("__name__", "up", "job", "web"),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NotEqual(t, seriesToken(tc.tenantA, tc.labelsA), seriesToken(tc.tenantB, tc.labelsB))
		})
	}
}
