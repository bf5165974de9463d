package queryrange

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestRetry(t *testing.T) {
	ok := &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: model.Matrix{}}}
	e500 := &HTTPError{Code: 500, Body: []byte("internal")}
	e503 := &HTTPError{Code: 503, Body: []byte("unavailable")}
	e400 := &HTTPError{Code: 400, Body: []byte("bad")}
	e429 := &HTTPError{Code: 429, Body: []byte("slow down")}
	transport := errors.New("read tcp: connection reset by peer")
	rows := []struct {
		name         string
		maxAttempts  int
		answers      []error // nil: ok
		wantAttempts int
		wantErr      error
	}{
		{"500 then 200: one retry", 5, []error{e500, nil}, 2, nil},
		{"400: no retry", 5, []error{e400, nil}, 1, e400},
		{"429: no retry", 5, []error{e429, nil}, 1, e429},
		{"bad data: no retry", 5, []error{&BadDataError{Err: errors.New("x")}, nil}, 1, nil},
		{"transport error then 200", 5, []error{transport, io.ErrUnexpectedEOF, nil}, 3, nil},
		{"always 503: max_retries attempts", 5, []error{e503, e503, e503, e503, e503, e503, nil}, 5, e503},
		{"max_retries 1: no retry", 1, []error{e500, nil}, 1, e500},
		{"canceled: no retry", 5, []error{context.Canceled, nil}, 1, context.Canceled},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			attempts := 0
			h := HandlerFunc(func(context.Context, *Request) (*Response, error) {
				err := row.answers[attempts]
				attempts++
				if err != nil {
					return nil, err
				}
				return ok, nil
			})
			m := NewMetrics(prometheus.NewRegistry())
			resp, err := Retry(row.maxAttempts, nil, m)(h).Do(context.Background(), &Request{Query: "up"})
			require.Equal(t, row.wantAttempts, attempts)
			require.Equal(t, float64(row.wantAttempts-1), testutil.ToFloat64(m.Retries))
			if row.answers[attempts-1] != nil {
				require.ErrorIs(t, err, row.answers[attempts-1])
				if row.wantErr != nil {
					require.Same(t, row.wantErr, err)
				}
				return
			}
			require.NoError(t, err)
			require.Same(t, ok, resp)
		})
	}

	t.Run("context done: no retry", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		attempts := 0
		h := HandlerFunc(func(context.Context, *Request) (*Response, error) {
			attempts++
			cancel()
			return nil, e500
		})
		_, err := Retry(5, nil, NewMetrics(prometheus.NewRegistry()))(h).Do(ctx, &Request{})
		require.Same(t, e500, err)
		require.Equal(t, 1, attempts)
	})
}
