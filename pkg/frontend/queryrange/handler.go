package queryrange

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
)

// NewHTTPHandler serves range queries over HTTP with h: it decodes each
// request (DecodeRequest), answers it with h and writes the answer
// (WriteResponse) or the error (WriteError). The tenant must already be in
// the request context (tenant.Middleware).
//
// Work that h leaves for after the answer (afterAnswer: caching it) runs
// once the answer is written and flushed, before ServeHTTP returns: the
// client has the whole answer (WriteResponse sets Content-Length) while
// it runs, and it cannot change the answer.
func NewHTTPHandler(h Handler, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := DecodeRequest(r)
		if err != nil {
			WriteError(w, err)
			return
		}
		after := &deferred{}
		defer after.run(w, logger)
		resp, err := h.Do(context.WithValue(r.Context(), deferredKey{}, after), req)
		if err == nil && resp.raw == nil {
			// Decode (if need be) and encode here, to log an error.
			var b []byte
			if b, err = EncodeResponse(resp); err == nil {
				resp = &Response{raw: b}
			}
		}
		if err != nil {
			if !errors.As(err, new(*HTTPError)) && !errors.As(err, new(*BadDataError)) {
				logger.Warn("range query", "query", req.Query, "err", err)
			}
			WriteError(w, err)
			return
		}
		WriteResponse(w, resp)
	})
}

// deferred is the work left for after one request's answer.
type deferred struct {
	mu   sync.Mutex
	fns  []func()
	done bool // run has begun: later work runs at once
}

type deferredKey struct{}

// afterAnswer runs fn after the answer to the request of ctx is written,
// if NewHTTPHandler serves it, else (a Handler called directly, as in
// tests) at once. fn must not write the answer nor use ctx, which may be
// canceled by then.
func afterAnswer(ctx context.Context, fn func()) {
	d, ok := ctx.Value(deferredKey{}).(*deferred)
	if ok {
		d.mu.Lock()
		if !d.done {
			d.fns = append(d.fns, fn)
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
	}
	fn()
}

// run flushes the answer written to w, then runs the work left for after
// it, in order. A panic is logged, and ends only the work.
func (d *deferred) run(w http.ResponseWriter, logger *slog.Logger) {
	d.mu.Lock()
	fns := d.fns
	d.fns, d.done = nil, true
	d.mu.Unlock()
	if len(fns) == 0 {
		return
	}
	_ = http.NewResponseController(w).Flush()
	defer func() {
		if p := recover(); p != nil {
			logger.Error("range query: work after the answer", "err", fmt.Errorf("panic: %v", p))
		}
	}()
	for _, fn := range fns {
		fn()
	}
}
