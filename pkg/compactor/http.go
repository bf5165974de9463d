package compactor

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// DeleteTenantStatus is the answer of DeleteTenantStatusHandler.
type DeleteTenantStatus struct {
	TenantID string `json:"tenant_id"`
	// BlocksDeleted is true once the tenant has no block left in the bucket.
	BlocksDeleted bool `json:"blocks_deleted"`
}

// DeleteTenantHandler serves POST /purger/delete_tenant: it marks the
// request's tenant for deletion and answers 200. The owning compactor then
// deletes all the tenant's blocks and its bucket index in its next cycle.
// Marking a tenant twice keeps the first mark.
func (c *Compactor) DeleteTenantHandler(w http.ResponseWriter, r *http.Request) {
	id, ok := requestTenant(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	m, err := bucketindex.ReadTenantDeletionMark(ctx, c.bkt, id)
	if err != nil {
		c.logger.Error("read tenant deletion mark", "tenant", id, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if m == nil {
		err = bucketindex.WriteTenantDeletionMark(ctx, c.bkt, id, bucketindex.TenantDeletionMark{CreationTime: c.now().Unix()})
		if err != nil {
			c.logger.Error("write tenant deletion mark", "tenant", id, "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		c.logger.Info("tenant marked for deletion", "tenant", id)
	}
	w.WriteHeader(http.StatusOK)
}

// DeleteTenantStatusHandler serves GET /purger/delete_tenant_status with
// the JSON DeleteTenantStatus of the request's tenant.
func (c *Compactor) DeleteTenantStatusHandler(w http.ResponseWriter, r *http.Request) {
	id, ok := requestTenant(w, r)
	if !ok {
		return
	}
	blocks, err := c.listBlocks(r.Context(), id)
	if err != nil {
		c.logger.Error("list blocks of tenant", "tenant", id, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(DeleteTenantStatus{TenantID: id, BlocksDeleted: len(blocks) == 0})
}

// requestTenant returns the tenant of a request: from its context when the
// tenant middleware ran, else from its X-Scope-OrgID header. On failure it
// has answered 401 (no tenant) or 400 (invalid tenant).
func requestTenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	if id, err := tenant.FromContext(r.Context()); err == nil {
		return id, true
	}
	id, err := tenant.FromRequest(r, true)
	switch {
	case errors.Is(err, tenant.ErrMissing):
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return "", false
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return "", false
	}
	return id, true
}

// RingHandler serves the compactor ring's status page (for GET
// /compactor/ring); without sharding it says there is no ring.
func (c *Compactor) RingHandler() http.Handler {
	if c.ring != nil {
		return c.ring
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("Compactor sharding is disabled: this compactor owns every tenant.\n"))
	})
}
