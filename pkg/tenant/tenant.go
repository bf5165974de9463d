// Package tenant resolves the tenant of a request: from the X-Scope-OrgID
// header at the edge, from the context inside the process, and from gRPC
// metadata between processes (dskit's user package carries it there).
package tenant

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	dskittenant "github.com/grafana/dskit/tenant"
	"github.com/grafana/dskit/user"
)

// Header is the HTTP header that names the tenant of a request.
const Header = "X-Scope-OrgID"

// Anonymous is the tenant of every request when authentication is disabled.
const Anonymous = "anonymous"

// ErrMissing is returned when a request names no tenant although
// authentication is enabled.
var ErrMissing = errors.New("no tenant: the X-Scope-OrgID header is required")

// FromRequest returns the tenant of r. With authEnabled false every request
// belongs to Anonymous, whatever its header says.
func FromRequest(r *http.Request, authEnabled bool) (string, error) {
	if !authEnabled {
		return Anonymous, nil
	}
	id := r.Header.Get(Header)
	if id == "" {
		return "", ErrMissing
	}
	if err := dskittenant.ValidTenantID(id); err != nil {
		return "", fmt.Errorf("invalid tenant %q: %w", id, err)
	}
	return id, nil
}

// FromContext returns the tenant carried by ctx.
func FromContext(ctx context.Context) (string, error) {
	id, err := user.ExtractOrgID(ctx)
	if err != nil {
		return "", ErrMissing
	}
	return id, nil
}

// WithTenant returns a context that carries tenant id.
func WithTenant(ctx context.Context, id string) context.Context {
	return user.InjectOrgID(ctx, id)
}

// Middleware resolves the tenant of each request and puts it in the request
// context. A request without a tenant gets 401, one with an invalid tenant
// 400, each with the reason.
func Middleware(authEnabled bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := FromRequest(r, authEnabled)
		if errors.Is(err, ErrMissing) {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithTenant(r.Context(), id)))
	})
}
