package frontendpb

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

func TestHTTPRequestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, method, target, body string
	}{
		{name: "get with query", method: http.MethodGet, target: "/prometheus/api/v1/query?query=up&time=1"},
		{name: "post form", method: http.MethodPost, target: "/api/v1/query_range", body: "query=rate(x[5m])&step=15"},
		{name: "escaped path", method: http.MethodGet, target: "/api/v1/label/a%2Fb/values"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			in.Header.Add("Accept", "application/json")
			in.Header.Add("X-Multi", "1")
			in.Header.Add("X-Multi", "2")
			in.Header.Set(tenant.Header, "spoofed")

			enc, err := FromHTTPRequest(in)
			require.NoError(t, err)
			require.Equal(t, tc.target, enc.GetUrl())

			out, err := ToHTTPRequest(context.Background(), enc, "team-a")
			require.NoError(t, err)
			require.Equal(t, tc.method, out.Method)
			require.Equal(t, in.URL.Path, out.URL.Path)
			require.Equal(t, in.URL.RawQuery, out.URL.RawQuery)
			require.Equal(t, tc.target, out.RequestURI)
			require.Equal(t, []string{"1", "2"}, out.Header.Values("X-Multi"))
			require.Equal(t, "team-a", out.Header.Get(tenant.Header), "the tenant of the query wins")
			id, err := tenant.FromContext(out.Context())
			require.NoError(t, err)
			require.Equal(t, "team-a", id)
			body, err := io.ReadAll(out.Body)
			require.NoError(t, err)
			require.Equal(t, tc.body, string(body))
		})
	}
}
