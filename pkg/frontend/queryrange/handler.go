package queryrange

import (
	"errors"
	"log/slog"
	"net/http"
)

// NewHTTPHandler serves range queries over HTTP with h: it decodes each
// request (DecodeRequest), answers it with h and writes the answer
// (WriteResponse) or the error (WriteError). The tenant must already be in
// the request context (tenant.Middleware).
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
		resp, err := h.Do(r.Context(), req)
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
