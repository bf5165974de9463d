package frontendpb

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// LocalProcess opens Process streams to srv, a frontend in this process,
// without gRPC: the messages are handed over as they are, neither encoded
// nor copied, so no message size limit applies (a querier's answer of
// hundreds of megabytes goes through whole). It has the signature of
// FrontendClient.Process, and the stream behaves as a gRPC one does: the
// handler runs until it returns or the stream's context ends, Recv then
// gives its error (or io.EOF), and the handler's Recv gives io.EOF after
// CloseSend.
//
// Messages must not change once sent: the other side reads them as they
// are.
func LocalProcess(srv FrontendServer) func(context.Context, ...grpc.CallOption) (Frontend_ProcessClient, error) {
	return func(ctx context.Context, _ ...grpc.CallOption) (Frontend_ProcessClient, error) {
		sctx, cancel := context.WithCancel(ctx)
		p := &localStream{
			ctx:      ctx,
			sctx:     sctx,
			toServer: make(chan *ClientToFrontend),
			toClient: make(chan *FrontendToClient),
			closed:   make(chan struct{}),
			done:     make(chan struct{}),
		}
		go func() {
			err := srv.Process(localServerStream{p})
			p.err = err
			close(p.done)
			cancel() // as gRPC ends a handler's context when it returns
		}()
		return localClientStream{p}, nil
	}
}

// localStream is the state of a LocalProcess stream shared by its ends.
type localStream struct {
	ctx, sctx context.Context // the client's, and the handler's (ends when it returns)
	toServer  chan *ClientToFrontend
	toClient  chan *FrontendToClient
	closeOnce sync.Once
	closed    chan struct{} // CloseSend
	done      chan struct{} // the handler returned with err
	err       error
}

// ctxError is a context's end as gRPC reports it.
func ctxError(ctx context.Context) error {
	return status.FromContextError(ctx.Err()).Err()
}

// localClientStream is the querier's end.
type localClientStream struct{ p *localStream }

var _ Frontend_ProcessClient = localClientStream{}

func (c localClientStream) Send(m *ClientToFrontend) error {
	select {
	case c.p.toServer <- m:
		return nil
	case <-c.p.done:
		return io.EOF // as gRPC: Recv tells why
	case <-c.p.ctx.Done():
		return ctxError(c.p.ctx)
	}
}

func (c localClientStream) Recv() (*FrontendToClient, error) {
	select {
	case m := <-c.p.toClient:
		return m, nil
	case <-c.p.done:
		if c.p.err != nil {
			if _, ok := status.FromError(c.p.err); !ok {
				return nil, status.Error(codes.Unknown, c.p.err.Error())
			}
			return nil, c.p.err
		}
		return nil, io.EOF
	case <-c.p.ctx.Done():
		return nil, ctxError(c.p.ctx)
	}
}

func (c localClientStream) CloseSend() error {
	c.p.closeOnce.Do(func() { close(c.p.closed) })
	return nil
}

func (c localClientStream) Header() (metadata.MD, error) { return nil, nil }
func (c localClientStream) Trailer() metadata.MD         { return nil }
func (c localClientStream) Context() context.Context     { return c.p.ctx }

func (c localClientStream) SendMsg(m any) error {
	msg, ok := m.(*ClientToFrontend)
	if !ok {
		return errors.New("local stream: not a ClientToFrontend")
	}
	return c.Send(msg)
}

func (c localClientStream) RecvMsg(any) error {
	return errors.New("local stream: RecvMsg is not supported, use Recv")
}

// localServerStream is the frontend's end.
type localServerStream struct{ p *localStream }

var _ Frontend_ProcessServer = localServerStream{}

func (s localServerStream) Send(m *FrontendToClient) error {
	select {
	case s.p.toClient <- m:
		return nil
	case <-s.p.sctx.Done():
		return ctxError(s.p.sctx)
	}
}

func (s localServerStream) Recv() (*ClientToFrontend, error) {
	select {
	case m := <-s.p.toServer:
		return m, nil
	case <-s.p.closed:
		return nil, io.EOF
	case <-s.p.sctx.Done():
		return nil, ctxError(s.p.sctx)
	}
}

func (s localServerStream) SetHeader(metadata.MD) error  { return nil }
func (s localServerStream) SendHeader(metadata.MD) error { return nil }
func (s localServerStream) SetTrailer(metadata.MD)       {}
func (s localServerStream) Context() context.Context     { return s.p.sctx }

func (s localServerStream) SendMsg(m any) error {
	msg, ok := m.(*FrontendToClient)
	if !ok {
		return errors.New("local stream: not a FrontendToClient")
	}
	return s.Send(msg)
}

func (s localServerStream) RecvMsg(any) error {
	return errors.New("local stream: RecvMsg is not supported, use Recv")
}
