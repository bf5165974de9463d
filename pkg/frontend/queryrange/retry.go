package queryrange

import (
	"context"
	"errors"
	"log/slog"
)

// Retry makes up to maxAttempts attempts at each request (1 or less means
// one): it tries again after a downstream 5xx (*HTTPError) or a transport
// error, never after a 4xx, a *BadDataError or once ctx is done. There is
// no backoff: downstream is a queue of queriers, where another attempt
// meets another querier.
func Retry(maxAttempts int, logger *slog.Logger, m *Metrics) Middleware {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, r *Request) (*Response, error) {
			for attempt := 1; ; attempt++ {
				resp, err := next.Do(ctx, r)
				if err == nil || attempt >= maxAttempts || ctx.Err() != nil || !retryable(err) {
					return resp, err
				}
				m.Retries.Inc()
				logger.Debug("retrying range query", "attempt", attempt, "query", r.Query, "start", r.Start, "end", r.End, "err", err)
			}
		})
	}
}

func retryable(err error) bool {
	if he, ok := errors.AsType[*HTTPError](err); ok {
		return he.Code >= 500
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.As(err, new(*BadDataError))
}
