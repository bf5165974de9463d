package frontendpb

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// scriptedFrontend runs script as its Process handler.
type scriptedFrontend struct {
	UnimplementedFrontendServer
	script func(Frontend_ProcessServer) error
}

func (f scriptedFrontend) Process(s Frontend_ProcessServer) error { return f.script(s) }

// TestLocalProcess drives LocalProcess streams as a querier and a frontend
// do, and checks that each end sees what it would over gRPC.
func TestLocalProcess(t *testing.T) {
	req := &FrontendToClient{Type: FrontendToClient_HTTP_REQUEST, HttpRequest: &HTTPRequest{Url: "/api/v1/query_range"}, TenantId: "t"}
	answer := &ClientToFrontend{HttpResponse: &HTTPResponse{Code: 200, Body: make([]byte, 200<<20)}} // over any gRPC limit
	for _, tc := range []struct {
		name   string
		server func(t *testing.T, s Frontend_ProcessServer) error
		client func(t *testing.T, c Frontend_ProcessClient, cancel context.CancelFunc)
	}{
		{
			name: "request and answer, handed over as they are",
			server: func(t *testing.T, s Frontend_ProcessServer) error {
				hello, err := s.Recv()
				require.NoError(t, err)
				require.Equal(t, "q1", hello.GetQuerierId())
				require.NoError(t, s.Send(req))
				got, err := s.Recv()
				require.NoError(t, err)
				require.Same(t, answer, got)
				_, err = s.Recv()
				require.Equal(t, io.EOF, err, "after CloseSend")
				return nil
			},
			client: func(t *testing.T, c Frontend_ProcessClient, _ context.CancelFunc) {
				require.NoError(t, c.Send(&ClientToFrontend{QuerierId: "q1"}))
				got, err := c.Recv()
				require.NoError(t, err)
				require.Same(t, req, got)
				require.NoError(t, c.Send(answer))
				require.NoError(t, c.CloseSend())
				_, err = c.Recv()
				require.Equal(t, io.EOF, err, "the handler returned nil")
				require.Equal(t, io.EOF, c.Send(answer), "sending after the handler returned")
			},
		},
		{
			name: "the handler's status error reaches the querier",
			server: func(*testing.T, Frontend_ProcessServer) error {
				return status.Error(codes.FailedPrecondition, "connect queriers to the schedulers")
			},
			client: func(t *testing.T, c Frontend_ProcessClient, _ context.CancelFunc) {
				_, err := c.Recv()
				require.Equal(t, codes.FailedPrecondition, status.Code(err))
				require.ErrorContains(t, err, "connect queriers to the schedulers")
			},
		},
		{
			name: "another error as Unknown",
			server: func(*testing.T, Frontend_ProcessServer) error {
				return errors.New("queue stopped")
			},
			client: func(t *testing.T, c Frontend_ProcessClient, _ context.CancelFunc) {
				_, err := c.Recv()
				require.Equal(t, codes.Unknown, status.Code(err))
				require.ErrorContains(t, err, "queue stopped")
			},
		},
		{
			name: "the querier goes away: the handler's Recv and Send end, and its context",
			server: func(t *testing.T, s Frontend_ProcessServer) error {
				_, err := s.Recv()
				require.Equal(t, codes.Canceled, status.Code(err))
				require.Equal(t, codes.Canceled, status.Code(s.Send(req)))
				select {
				case <-s.Context().Done():
				case <-time.After(10 * time.Second):
					t.Error("the handler's context did not end")
				}
				return s.Context().Err()
			},
			client: func(t *testing.T, c Frontend_ProcessClient, cancel context.CancelFunc) {
				cancel()
				_, err := c.Recv()
				require.Equal(t, codes.Canceled, status.Code(err))
				require.Equal(t, codes.Canceled, status.Code(c.Send(answer)))
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			srv := scriptedFrontend{script: func(s Frontend_ProcessServer) error {
				defer close(done)
				return tc.server(t, s)
			}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, err := LocalProcess(srv)(ctx)
			require.NoError(t, err)
			tc.client(t, c, cancel)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the handler did not return")
			}
		})
	}
}
