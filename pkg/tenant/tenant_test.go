package tenant

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFromRequest(t *testing.T) {
	for _, tc := range []struct {
		name        string
		authEnabled bool
		header      *string // nil: no header at all
		want        string
		wantErr     string
		wantMissing bool
	}{
		{name: "auth on, tenant", authEnabled: true, header: ptr("team-a"), want: "team-a"},
		{name: "auth on, every special character", authEnabled: true, header: ptr("a!-_.*'()Z9"), want: "a!-_.*'()Z9"},
		{name: "auth on, longest tenant", authEnabled: true, header: ptr(strings.Repeat("x", 150)), want: strings.Repeat("x", 150)},
		{name: "auth on, no header", authEnabled: true, wantErr: "no tenant: the X-Scope-OrgID header is required", wantMissing: true},
		{name: "auth on, empty header", authEnabled: true, header: ptr(""), wantErr: "no tenant: the X-Scope-OrgID header is required", wantMissing: true},
		{name: "auth on, slash", authEnabled: true, header: ptr("a/b"), wantErr: `invalid tenant "a/b": tenant ID 'a/b' contains unsupported character '/'`},
		{name: "auth on, several tenants", authEnabled: true, header: ptr("a|b"), wantErr: `invalid tenant "a|b": tenant ID 'a|b' contains unsupported character '|'`},
		{name: "auth on, dot", authEnabled: true, header: ptr("."), wantErr: `invalid tenant ".": tenant ID is '.' or '..'`},
		{name: "auth on, dot dot", authEnabled: true, header: ptr(".."), wantErr: `invalid tenant "..": tenant ID is '.' or '..'`},
		{name: "auth on, too long", authEnabled: true, header: ptr(strings.Repeat("x", 151)), wantErr: `invalid tenant "` + strings.Repeat("x", 151) + `": tenant ID is too long: max 150 characters`},
		{name: "auth off, no header", want: Anonymous},
		{name: "auth off, tenant header ignored", header: ptr("team-a"), want: Anonymous},
		{name: "auth off, invalid header ignored", header: ptr("a/b"), want: Anonymous},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.header != nil {
				r.Header.Set(Header, *tc.header)
			}
			got, err := FromRequest(r, tc.authEnabled)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				require.Equal(t, tc.wantMissing, errors.Is(err, ErrMissing))
				require.Empty(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestMiddleware(t *testing.T) {
	for _, tc := range []struct {
		name        string
		authEnabled bool
		header      string
		wantStatus  int
		wantBody    string
	}{
		{name: "tenant", authEnabled: true, header: "team-a", wantStatus: http.StatusOK, wantBody: "tenant team-a"},
		{name: "missing tenant", authEnabled: true, wantStatus: http.StatusUnauthorized, wantBody: "no tenant: the X-Scope-OrgID header is required\n"},
		{name: "invalid tenant", authEnabled: true, header: "a/b", wantStatus: http.StatusBadRequest, wantBody: "invalid tenant \"a/b\": tenant ID 'a/b' contains unsupported character '/'\n"},
		{name: "auth off, no header", wantStatus: http.StatusOK, wantBody: "tenant anonymous"},
		{name: "auth off, header ignored", header: "team-a", wantStatus: http.StatusOK, wantBody: "tenant anonymous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called = true
				id, err := FromContext(r.Context())
				require.NoError(t, err)
				_, _ = io.WriteString(w, "tenant "+id)
			})
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.header != "" {
				r.Header.Set(Header, tc.header)
			}
			w := httptest.NewRecorder()
			Middleware(tc.authEnabled, next).ServeHTTP(w, r)

			require.Equal(t, tc.wantStatus, w.Code)
			require.Equal(t, tc.wantBody, w.Body.String())
			require.Equal(t, tc.wantStatus == http.StatusOK, called)
		})
	}
}

func TestContext(t *testing.T) {
	t.Run("round trip", func(t *testing.T) {
		id, err := FromContext(WithTenant(context.Background(), "team-a"))
		require.NoError(t, err)
		require.Equal(t, "team-a", id)
	})
	t.Run("innermost wins", func(t *testing.T) {
		ctx := WithTenant(WithTenant(context.Background(), "team-a"), "team-b")
		id, err := FromContext(ctx)
		require.NoError(t, err)
		require.Equal(t, "team-b", id)
	})
	t.Run("missing", func(t *testing.T) {
		id, err := FromContext(context.Background())
		require.ErrorIs(t, err, ErrMissing)
		require.Empty(t, id)
	})
}

func ptr(s string) *string { return &s }
