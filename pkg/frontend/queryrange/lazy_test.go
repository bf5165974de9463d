package queryrange

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/cache"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// lazyBody is an answer over [1s, 4s] at a 1s step, as the querier writes
// it.
const lazyBody = `{"status":"success","data":{"resultType":"matrix","result":[` +
	`{"metric":{"a":"x \"]}\\"},"values":[[1,"1"],[2,"2"],[3,"3"],[4,"4"]]},` +
	`{"metric":{"a":"y"},"histograms":[[2,{"count":"1","sum":"2","buckets":[[0,"1","2","1"]]}],[4,{"count":"3","sum":"4","buckets":[[1,"-1","1","3"]]}]]}]}}`

// poison is what a lazily decoded Response's Data.Result holds in
// TestLazyResponse: code that reads the field instead of calling Result
// answers with it.
var poison = model.Matrix{{Metric: model.Metric{"poison": "read without Result"}, Values: []model.SamplePair{{Timestamp: 1000, Value: 1}}}}

// TestLazyResponse runs a lazily decoded answer through every path that
// reads series, with a poisoned Data.Result, and requires the same output
// as from the answer decoded at once.
func TestLazyResponse(t *testing.T) {
	other := &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: model.Matrix{
		{Metric: model.Metric{"a": "x \"]}\\"}, Values: []model.SamplePair{{Timestamp: 4000, Value: 4}, {Timestamp: 5000, Value: 5}}},
		{Metric: model.Metric{"a": "z"}, Values: []model.SamplePair{{Timestamp: 5000, Value: 6}}},
	}}}
	write := func(t *testing.T, r *Response) string {
		w := httptest.NewRecorder()
		WriteResponse(w, r)
		require.Equal(t, http.StatusOK, w.Code)
		return w.Body.String()
	}
	rows := []struct {
		name        string
		contentType string
		path        func(t *testing.T, r *Response) string
	}{
		{"written as it came", "application/json", write},
		{"written, encoded", "text/plain", write},
		{"the one part of a merge, written", "", func(t *testing.T, r *Response) string {
			return write(t, must[*Response](t)(mergeResponses([]*Response{r})))
		}},
		{"merged with another", "application/json", func(t *testing.T, r *Response) string {
			return encode(t, must[*Response](t)(mergeResponses([]*Response{r, other})))
		}},
		{"clipped", "application/json", func(t *testing.T, r *Response) string {
			return encode(t, must[*Response](t)(clipResponse(r, 2000, 3000)))
		}},
		{"cached extents", "application/json", func(t *testing.T, r *Response) string {
			exts, err := decodeExtents(must[[]byte](t)(encodeExtents([]extent{{start: 1000, end: 4000, resp: r}})))
			require.NoError(t, err)
			require.Len(t, exts, 1)
			return encode(t, exts[0].resp)
		}},
		{"results cache, then from it", "application/json", func(t *testing.T, r *Response) string {
			c := cache.NewInMemory(1<<20, "test", prometheus.NewRegistry())
			calls := 0
			h := ResultsCache(testConfig().ResultsCache, ResultsCacheDeps{Cache: c, Now: func() time.Time { return time.UnixMilli(day) }})(
				HandlerFunc(func(context.Context, *Request) (*Response, error) { calls++; return r, nil }))
			ctx := tenant.WithTenant(context.Background(), "a")
			req := &Request{Query: "up", Start: 1000, End: 4000, Step: 1000}
			first := encode(t, must[*Response](t)(h.Do(ctx, req)))
			second := encode(t, must[*Response](t)(h.Do(ctx, req)))
			require.Equal(t, first, second)
			require.Equal(t, 1, calls, "the second answer comes from the cache")
			return second
		}},
		{"served over HTTP", "application/json", func(t *testing.T, r *Response) string {
			w := httptest.NewRecorder()
			NewHTTPHandler(HandlerFunc(func(context.Context, *Request) (*Response, error) { return r, nil }), nil).
				ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/query_range?query=up&start=1&end=4&step=1", nil))
			require.Equal(t, http.StatusOK, w.Code)
			return w.Body.String()
		}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			eager, err := decodeResponseBody([]byte(lazyBody))
			require.NoError(t, err)
			want := row.path(t, eager)
			require.NotContains(t, want, "poison")

			lazy, err := DecodeResponse(&http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {row.contentType}},
				Body: io.NopCloser(strings.NewReader(lazyBody))})
			require.NoError(t, err)
			require.NotNil(t, lazy.lazy, "decoded lazily")
			lazy.Data.Result = poison
			require.Equal(t, want, row.path(t, lazy))
		})
	}
}

// TestAfterAnswer: work left for after the answer runs once the whole
// answer is written and flushed, before ServeHTTP returns; without
// NewHTTPHandler, at once; and it cannot change the answer.
func TestAfterAnswer(t *testing.T) {
	const want = `{"status":"success","data":{"resultType":"matrix","result":[]}}`
	rows := []struct {
		name string
		do   func(ctx context.Context, w *httptest.ResponseRecorder, ran *[]string) (*Response, error)
		code int
		ran  []string
	}{
		{"after the whole answer", func(ctx context.Context, w *httptest.ResponseRecorder, ran *[]string) (*Response, error) {
			afterAnswer(ctx, func() { *ran = append(*ran, "1:"+w.Body.String()) })
			afterAnswer(ctx, func() { *ran = append(*ran, "2") })
			return &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: model.Matrix{}}}, nil
		}, http.StatusOK, []string{"1:" + want, "2"}},
		{"after an error", func(ctx context.Context, w *httptest.ResponseRecorder, ran *[]string) (*Response, error) {
			afterAnswer(ctx, func() { *ran = append(*ran, "1") })
			return nil, &BadDataError{Err: io.EOF}
		}, http.StatusBadRequest, []string{"1"}},
		{"left by work after the answer: at once", func(ctx context.Context, w *httptest.ResponseRecorder, ran *[]string) (*Response, error) {
			afterAnswer(ctx, func() {
				afterAnswer(ctx, func() { *ran = append(*ran, "inner") })
				*ran = append(*ran, "outer")
			})
			return &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: model.Matrix{}}}, nil
		}, http.StatusOK, []string{"inner", "outer"}},
		{"a panic ends only the work", func(ctx context.Context, w *httptest.ResponseRecorder, ran *[]string) (*Response, error) {
			afterAnswer(ctx, func() { *ran = append(*ran, "1"); panic("boom") })
			afterAnswer(ctx, func() { *ran = append(*ran, "2") })
			return &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: model.Matrix{}}}, nil
		}, http.StatusOK, []string{"1"}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			var ran []string
			w := httptest.NewRecorder()
			h := NewHTTPHandler(HandlerFunc(func(ctx context.Context, _ *Request) (*Response, error) {
				return row.do(ctx, w, &ran)
			}), nil)
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/query_range?query=up&start=1&end=4&step=1", nil))
			require.Equal(t, row.code, w.Code)
			require.Equal(t, row.ran, ran)
			if row.code == http.StatusOK {
				require.Equal(t, want, w.Body.String())
				require.Equal(t, "63", w.Header().Get("Content-Length"))
				require.True(t, w.Flushed)
			}
		})
	}

	t.Run("without NewHTTPHandler: at once", func(t *testing.T) {
		ran := false
		afterAnswer(context.Background(), func() { ran = true })
		require.True(t, ran)
	})
}

// TestResultsCacheStoresAfterAnswer: over HTTP, the results cache stores
// once the answer is written, and before ServeHTTP returns.
func TestResultsCacheStoresAfterAnswer(t *testing.T) {
	w := httptest.NewRecorder()
	c := &watchedCache{InMemory: cache.NewInMemory(1<<20, "test", prometheus.NewRegistry()), w: w}
	h := ResultsCache(testConfig().ResultsCache, ResultsCacheDeps{Cache: c, Now: func() time.Time { return time.UnixMilli(day) }})(
		HandlerFunc(func(context.Context, *Request) (*Response, error) {
			return DecodeResponse(&http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(lazyBody))})
		}))
	srv := tenant.Middleware(true, NewHTTPHandler(h, nil))
	req := httptest.NewRequest(http.MethodGet, "/api/v1/query_range?query=up&start=1&end=4&step=1", nil)
	req.Header.Set(tenant.Header, "a")
	srv.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, lazyBody, w.Body.String())
	require.Equal(t, []string{lazyBody}, c.writtenAtStore)
}

// watchedCache records what was written to w when Store is called.
type watchedCache struct {
	*cache.InMemory
	w              *httptest.ResponseRecorder
	writtenAtStore []string
}

func (c *watchedCache) Store(items map[string][]byte, ttl time.Duration) {
	c.writtenAtStore = append(c.writtenAtStore, c.w.Body.String())
	c.InMemory.Store(items, ttl)
}

// inMemoryBody is a body with Bytes, as transport.HTTPRoundTripper's.
type inMemoryBody struct {
	io.Reader
	b []byte
}

func (inMemoryBody) Close() error    { return nil }
func (b inMemoryBody) Bytes() []byte { return b.b }

// TestDecodeResponseKeepsInMemoryBody: a body already in memory is kept,
// not copied, and written as it came.
func TestDecodeResponseKeepsInMemoryBody(t *testing.T) {
	body := []byte(lazyBody)
	resp, err := DecodeResponse(&http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: inMemoryBody{Reader: strings.NewReader("unused"), b: body}})
	require.NoError(t, err)
	require.Same(t, &body[0], &resp.raw[0])
	w := httptest.NewRecorder()
	WriteResponse(w, resp)
	require.Equal(t, lazyBody, w.Body.String())
}
