package ingester

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/prometheus/prometheus/prompb"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// maxMetadataPerMetric bounds the distinct metadata entries kept per metric
// family; the oldest goes first.
const maxMetadataPerMetric = 10

type metadataEntry struct {
	typ, help, unit string
	seen            time.Time // last pushed
}

// same reports whether e and o say the same.
func (e metadataEntry) same(o metadataEntry) bool {
	return e.typ == o.typ && e.help == o.help && e.unit == o.unit
}

// metadataStore keeps the metadata pushed for one tenant's metric families.
// It lives in memory only: Prometheus re-sends metadata every minute, and
// what has not been pushed for a while is dropped (purge), so that the
// families of metrics that are gone do not pile up.
type metadataStore struct {
	mu       sync.RWMutex
	families map[string][]metadataEntry
}

func newMetadataStore() *metadataStore {
	return &metadataStore{families: map[string][]metadataEntry{}}
}

// add records md, pushed at now, moving an entry already known to the end.
// md's strings may point into a request buffer: what is kept is cloned.
func (s *metadataStore) add(md *prompb.MetricMetadata, now time.Time) {
	e := metadataEntry{typ: strings.ToLower(md.Type.String()), help: md.Help, unit: md.Unit, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	entries := s.families[md.MetricFamilyName]
	switch i := slices.IndexFunc(entries, e.same); {
	case i >= 0 && i == len(entries)-1:
		entries[i].seen = now // already the newest: the common case, a client resending it
		return
	case i >= 0:
		e.help, e.unit = entries[i].help, entries[i].unit
		entries = slices.Delete(entries, i, i+1)
	default:
		e.help, e.unit = strings.Clone(e.help), strings.Clone(e.unit)
	}
	if len(entries) >= maxMetadataPerMetric {
		entries = entries[1:]
	}
	// Assigning replaces the map's key too: it must not be the request's.
	s.families[strings.Clone(md.MetricFamilyName)] = append(entries, e)
}

// purge drops the entries last pushed before cutoff, and the families left
// without any.
func (s *metadataStore) purge(cutoff time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, entries := range s.families {
		entries = slices.DeleteFunc(entries, func(e metadataEntry) bool { return e.seen.Before(cutoff) })
		if len(entries) == 0 {
			delete(s.families, name)
			continue
		}
		s.families[name] = entries
	}
}

// get returns the entries of metric (all families when empty), at most
// limit families and perMetric entries each (0 = no bound).
func (s *metadataStore) get(metric string, limit, perMetric int) []*ingesterpb.Metadata {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*ingesterpb.Metadata
	families := 0
	for name, entries := range s.families {
		if metric != "" && name != metric {
			continue
		}
		if limit > 0 && families >= limit {
			break
		}
		families++
		// Newest first.
		for i, n := len(entries)-1, 0; i >= 0 && (perMetric <= 0 || n < perMetric); i, n = i-1, n+1 {
			e := entries[i]
			out = append(out, &ingesterpb.Metadata{MetricFamilyName: name, Type: e.typ, Help: e.help, Unit: e.unit})
		}
	}
	return out
}

// MetricMetadata returns the tenant's metric metadata.
func (i *Ingester) MetricMetadata(ctx context.Context, req *ingesterpb.MetadataRequest) (*ingesterpb.MetadataResponse, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, httpgrpc.Errorf(http.StatusUnauthorized, "%s", err)
	}
	db, err := i.lookupDB(tenantID)
	if err != nil || db == nil {
		return &ingesterpb.MetadataResponse{}, err
	}
	return &ingesterpb.MetadataResponse{Metadata: db.metadata.get(req.Metric, int(req.Limit), int(req.LimitPerMetric))}, nil
}
