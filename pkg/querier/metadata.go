package querier

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/client"
	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
)

// metadataEntry is one metadata entry in Prometheus's JSON.
type metadataEntry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// Metadata returns the tenant's metric metadata from the ingesters, merged
// over replicas: for each metric family its distinct entries, at most limit
// families and perMetric entries each (0 or less = no bound).
func (q *IngesterQueryable) Metadata(ctx context.Context, metric string, limit, perMetric int) (map[string][]metadataEntry, error) {
	req := &ingesterpb.MetadataRequest{Metric: metric}
	results, _, err := forEachIngester(ctx, q, nil, func(ctx context.Context, c *client.Client) ([]*ingesterpb.Metadata, error) {
		resp, err := c.MetricMetadata(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Metadata, nil
	}, nil)
	if err != nil {
		return nil, err
	}
	out := map[string][]metadataEntry{}
	seen := map[string]map[metadataEntry]bool{}
	for _, r := range results {
		for _, m := range r {
			e := metadataEntry{Type: m.Type, Help: m.Help, Unit: m.Unit}
			if seen[m.MetricFamilyName][e] {
				continue
			}
			if _, ok := out[m.MetricFamilyName]; !ok && limit > 0 && len(out) >= limit {
				continue
			}
			if perMetric > 0 && len(out[m.MetricFamilyName]) >= perMetric {
				continue
			}
			if seen[m.MetricFamilyName] == nil {
				seen[m.MetricFamilyName] = map[metadataEntry]bool{}
			}
			seen[m.MetricFamilyName][e] = true
			out[m.MetricFamilyName] = append(out[m.MetricFamilyName], e)
		}
	}
	return out, nil
}

// MetadataHandler serves GET /api/v1/metadata as Prometheus does, from the
// metadata remote-write clients pushed.
func MetadataHandler(q *IngesterQueryable) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, err := intParam(r, "limit")
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "bad_data", err)
			return
		}
		perMetric, err := intParam(r, "limit_per_metric")
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "bad_data", err)
			return
		}
		md, err := q.Metadata(r.Context(), r.FormValue("metric"), limit, perMetric)
		if err != nil {
			writeAPIError(w, http.StatusInternalServerError, "internal", err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": md})
	})
}

func intParam(r *http.Request, name string) (int, error) {
	s := r.FormValue(name)
	if s == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s must be a number", name)
	}
	return n, nil
}

func writeAPIError(w http.ResponseWriter, status int, typ string, err error) {
	writeJSON(w, status, map[string]any{"status": "error", "errorType": typ, "error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
