package frontendpb

import "context"

// Received is one message read from a stream, or the error that ended it.
type Received[T any] struct {
	Msg T
	Err error
}

// Receive reads a stream with recv on a goroutine of its own, so that the
// caller can wait for a message and for something else at once (a
// querier's death while a request runs, a stopping service). The channel
// yields every message and then the error that ended the stream; the
// goroutine also ends when ctx does, which must be no later than the
// stream's handler returns.
func Receive[T any](ctx context.Context, recv func() (T, error)) <-chan Received[T] {
	msgs := make(chan Received[T], 1)
	go func() {
		for {
			m, err := recv()
			select {
			case msgs <- Received[T]{Msg: m, Err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return msgs
}
