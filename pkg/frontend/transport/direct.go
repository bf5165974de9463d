package transport

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/frontendpb"
	"github.com/neocortex-metrics/neocortex/pkg/frontend/queue"
)

// request is a request in the queue of direct mode.
type request struct {
	ctx          context.Context // RoundTrip's: done once nobody waits
	tenant       string
	req          *frontendpb.HTTPRequest
	statsEnabled bool
	done         chan result // buffered: the first result wins
}

// deliver hands the outcome to RoundTrip, if it still waits; only the first
// outcome counts.
func (r *request) deliver(res result) {
	select {
	case r.done <- res:
	default:
	}
}

func (f *Frontend) roundTripDirect(ctx context.Context, tenantID string, req *frontendpb.HTTPRequest, statsEnabled bool) result {
	r := &request{ctx: ctx, tenant: tenantID, req: req, statsEnabled: statsEnabled, done: make(chan result, 1)}
	if err := f.queue.Enqueue(tenantID, r, f.cfg.Queue.MaxQueriersPerTenant); err != nil {
		if errors.Is(err, queue.ErrStopped) {
			err = ErrStopped
		}
		return result{err: err}
	}
	select {
	case res := <-r.done:
		return res
	case <-ctx.Done():
		// When the request is not queued any more, the Process stream that
		// took it sees ctx done and tells its querier.
		f.queue.Remove(tenantID, r)
		return result{err: ctx.Err()}
	}
}

// Process serves a querier's stream in direct mode: it hands the querier
// one queued request at a time and delivers its answers.
func (f *Frontend) Process(stream frontendpb.Frontend_ProcessServer) error {
	if f.queue == nil {
		return status.Error(codes.FailedPrecondition, "this query-frontend sends queries through query-schedulers: connect queriers to them")
	}
	hello, err := stream.Recv()
	if err != nil {
		return err
	}
	id := hello.GetQuerierId()
	if id == "" {
		return status.Error(codes.InvalidArgument, "the first message must name the querier")
	}
	ctx := stream.Context()
	// Answers are read on their own so that a querier's death or a
	// cancelled request are noticed while a request runs. The reader ends
	// with the stream, when this handler returns at the latest.
	msgs := frontendpb.Receive(ctx, stream.Recv)
	return f.queue.Serve(ctx, id, func(item queue.Request) error {
		r := item.(*request)
		if r.ctx.Err() != nil {
			return nil // RoundTrip gave up before it could remove it
		}
		return f.processOne(ctx, stream, msgs, r)
	}, func() error {
		return stream.Send(&frontendpb.FrontendToClient{Type: frontendpb.FrontendToClient_SHUTDOWN})
	})
}

// processOne sends r to the querier and delivers its answer. An error means
// the stream is broken.
func (f *Frontend) processOne(ctx context.Context, stream frontendpb.Frontend_ProcessServer, msgs <-chan frontendpb.Received[*frontendpb.ClientToFrontend], r *request) error {
	err := stream.Send(&frontendpb.FrontendToClient{
		Type:         frontendpb.FrontendToClient_HTTP_REQUEST,
		HttpRequest:  r.req,
		TenantId:     r.tenant,
		StatsEnabled: r.statsEnabled,
	})
	if err != nil {
		r.deliver(result{err: fmt.Errorf("%w: send: %w", ErrQuerierFailed, err)})
		return err
	}
	cancelled := r.ctx.Done()
	for {
		select {
		case m := <-msgs:
			if m.Err != nil {
				r.deliver(result{err: fmt.Errorf("%w: %w", ErrQuerierFailed, m.Err)})
				return m.Err
			}
			if m.Msg.GetHttpResponse() == nil {
				r.deliver(result{err: fmt.Errorf("%w: answer without a response", ErrQuerierFailed)})
				return status.Error(codes.InvalidArgument, "answer without a response")
			}
			r.deliver(result{resp: m.Msg.GetHttpResponse(), stats: m.Msg.GetStats()})
			return nil
		case <-cancelled:
			// The querier still answers; the answer is dropped.
			cancelled = nil
			if err := stream.Send(&frontendpb.FrontendToClient{Type: frontendpb.FrontendToClient_CANCEL}); err != nil {
				return err
			}
		case <-ctx.Done():
			r.deliver(result{err: fmt.Errorf("%w: %w", ErrQuerierFailed, ctx.Err())})
			return ctx.Err()
		}
	}
}
