package validation

import (
	"math/rand/v2"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// TestNames checks the table-driven name checks against Prometheus's own,
// on chosen names and on random strings over an alphabet of edge bytes.
func TestNames(t *testing.T) {
	names := []string{"", "a", "A", "_", ":", "0", "a0", "0a", "a:b", ":a", "a-b", "__name__", "http_requests_total",
		"job:rate5m", "é", "aé", "a\x00", "a b", "Z9_", "a\xff", "\xff", "a.b", "a/b"}
	rng := rand.New(rand.NewPCG(5, 5))
	alphabet := []byte("aZ_:09-. /\x00\x7f\x80\xc3\xa9\xff")
	for range 20000 {
		b := make([]byte, rng.IntN(6))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		names = append(names, string(b))
	}
	for _, n := range names {
		require.Equal(t, model.LegacyValidation.IsValidLabelName(n), validLabelName(n), "label name %q", n)
		require.Equal(t, model.LegacyValidation.IsValidMetricName(n), validMetricName(n), "metric name %q", n)
	}
}
