package queryrange

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/neocortex-metrics/neocortex/pkg/cache"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// ResultsCacheDeps are what the results cache needs besides its
// configuration.
type ResultsCacheDeps struct {
	// Cache is the backend; required.
	Cache cache.Cache
	// Interval is the split interval: one cache key holds the answers
	// for one interval of one query. Zero means 24h.
	Interval time.Duration
	// Now is the clock the freshness window is measured on.
	Now func() time.Time
	// Parser, Logger and Metrics may be nil: Prometheus's default parser,
	// no logs, unregistered metrics.
	Parser  parser.Parser
	Logger  *slog.Logger
	Metrics *Metrics
}

// ResultsCache answers requests from cached extents, fetching only the
// missing sub-ranges from the next handler, merging, and caching the
// union. Meant to sit below SplitByInterval, it keys extents by tenant,
// query, step, the step's phase (start mod step) and the interval the
// request starts in, hashed.
//
// It caches nothing in the newest cfg.MaxFreshness before now: a request
// reaching into it gets what is cached up to then and the rest from
// downstream. Nor does it cache answers with warnings or infos, or queries
// that read data after their evaluation time (negative offsets, @ after
// the freshness window) or depend on the request's range (see
// cacheableQuery). Options.CacheDisabled bypasses it, reads and writes.
func ResultsCache(cfg ResultsCacheConfig, deps ResultsCacheDeps) Middleware {
	interval := deps.Interval.Milliseconds()
	if interval <= 0 {
		interval = (24 * time.Hour).Milliseconds()
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := deps.Parser
	if p == nil {
		p = parser.NewParser(parser.Options{})
	}
	metrics := deps.Metrics
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return func(next Handler) Handler {
		return &resultsCache{
			next: next, cache: deps.Cache, interval: interval, freshness: cfg.MaxFreshness, ttl: cfg.TTL,
			now: now, parser: p, logger: logger, metrics: metrics,
		}
	}
}

type resultsCache struct {
	next      Handler
	cache     cache.Cache
	interval  int64
	freshness time.Duration
	ttl       time.Duration
	now       func() time.Time
	parser    parser.Parser
	logger    *slog.Logger
	metrics   *Metrics
}

func (c *resultsCache) Do(ctx context.Context, r *Request) (*Response, error) {
	if r.Options.CacheDisabled || r.Step <= 0 || r.End < r.Start {
		return c.next.Do(ctx, r)
	}
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return c.next.Do(ctx, r)
	}
	// Evaluation timestamps up to maxT are final.
	maxT := c.now().Add(-c.freshness).UnixMilli()
	if r.Start > maxT {
		return c.next.Do(ctx, r)
	}
	expr, err := c.parser.ParseExpr(r.Query)
	if err != nil || !cacheableQuery(expr, maxT) {
		return c.next.Do(ctx, r)
	}
	r = r.WithRange(r.Start, r.Start+(r.End-r.Start)/r.Step*r.Step)
	cacheEnd := min(r.End, r.Start+(maxT-r.Start)/r.Step*r.Step)

	key := resultsCacheKey(id, r, c.interval)
	cached := c.fetch(ctx, key)

	// The answer's pieces in time order: cached extents clipped to the
	// request, and the gaps between them, fetched.
	var (
		pieces  []*Response
		fetched []extent
		cur     = r.Start
	)
	fetch := func(start, end int64) error {
		c.metrics.CacheDownstreamRequests.Inc()
		resp, err := c.next.Do(ctx, r.WithRange(start, end))
		if err != nil {
			return err
		}
		pieces = append(pieces, resp)
		fetched = append(fetched, extent{start: start, end: end, resp: resp})
		return nil
	}
	for _, e := range cached {
		if e.end < cur || floorMod(e.start-r.Start, r.Step) != 0 || floorMod(e.end-r.Start, r.Step) != 0 {
			continue
		}
		if e.start > r.End {
			break
		}
		if e.start > cur {
			if err := fetch(cur, e.start-r.Step); err != nil {
				return nil, err
			}
			cur = e.start
		}
		end := min(e.end, r.End)
		p, err := clipResponse(e.resp, cur, end)
		if err != nil {
			return nil, err
		}
		pieces = append(pieces, p)
		cur = end + r.Step
	}
	if cur <= r.End {
		if err := fetch(cur, r.End); err != nil {
			return nil, err
		}
	}
	for _, p := range pieces {
		if p.Status != statusSuccess {
			return p, nil
		}
	}
	// Caching decodes and encodes every fetched series: it waits until
	// the answer is written.
	afterAnswer(ctx, func() { c.store(key, cached, fetched, cacheEnd, r.Step) })
	return mergeResponses(pieces)
}

// resultsCacheKey hashes what identifies the answers of r's query in r's
// interval: tenant, step, phase, interval, the interval's number and the
// query (last, as the only part that may hold any byte).
func resultsCacheKey(tenantID string, r *Request, interval int64) string {
	b := make([]byte, 0, len(tenantID)+len(r.Query)+64)
	b = append(b, tenantID...)
	for _, n := range []int64{r.Step, floorMod(r.Start, r.Step), interval, floorTo(r.Start, interval) / interval} {
		b = append(b, 0)
		b = strconv.AppendInt(b, n, 10)
	}
	b = append(b, 0)
	b = append(b, r.Query...)
	sum := sha256.Sum256(b)
	return "qr1:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// fetch returns the extents cached under key, sorted by start; none when
// they are missing or unreadable.
func (c *resultsCache) fetch(ctx context.Context, key string) []extent {
	data, ok := c.cache.Fetch(ctx, []string{key})[key]
	if !ok {
		return nil
	}
	exts, err := decodeExtents(data)
	if err != nil {
		c.logger.Warn("read cached results", "key", key, "err", err)
		return nil
	}
	slices.SortFunc(exts, func(a, b extent) int { return cmp.Compare(a.start, b.start) })
	return exts
}

// store caches the union of the cached extents and the fetched answers
// that may be cached, up to cacheEnd, merging extents that overlap or
// touch. It stores nothing when nothing new may be cached, or when a
// fetched answer's series cannot be decoded.
func (c *resultsCache) store(key string, cached, fetched []extent, cacheEnd, step int64) {
	exts := slices.Clone(cached)
	added := false
	for _, f := range fetched {
		if f.start > cacheEnd || !cacheableResponse(f.resp) {
			continue
		}
		end := min(f.end, cacheEnd)
		resp, err := clipResponse(f.resp, f.start, end)
		if err != nil {
			c.logger.Warn("cache results", "key", key, "err", err)
			return
		}
		exts = append(exts, extent{start: f.start, end: end, resp: resp})
		added = true
	}
	if !added {
		return
	}
	slices.SortFunc(exts, func(a, b extent) int { return cmp.Compare(a.start, b.start) })
	merged := exts[:1]
	for _, e := range exts[1:] {
		last := &merged[len(merged)-1]
		if e.start > last.end+step {
			merged = append(merged, e)
			continue
		}
		if e.end > last.end {
			resp, err := mergeResponses([]*Response{last.resp, e.resp})
			if err != nil {
				c.logger.Warn("cache results", "key", key, "err", err)
				return
			}
			last.resp = resp
			last.end = e.end
		}
	}
	b, err := encodeExtents(merged)
	if err != nil {
		c.logger.Warn("cache results", "key", key, "err", err)
		return
	}
	c.cache.Store(map[string][]byte{key: b}, c.ttl)
}

func cacheableResponse(r *Response) bool {
	return r.Status == statusSuccess && len(r.Warnings) == 0 && len(r.Infos) == 0
}
