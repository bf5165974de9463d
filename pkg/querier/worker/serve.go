package worker

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/grafana/dskit/backoff"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/frontendpb"
	"github.com/neocortex-metrics/neocortex/pkg/querier"
)

type kind int

const (
	kindRequest kind = iota
	kindCancel
	kindShutdown
)

// incoming is one message from a frontend or scheduler.
type incoming struct {
	kind    kind
	queryID uint64 // 0 in direct mode
	work    *work
	err     error // the stream broke
	// exec is the running request's cancellation, set by the reader.
	exec *execution
}

// work is one request to run.
type work struct {
	queryID  uint64
	tenant   string
	req      *frontendpb.HTTPRequest
	stats    bool
	frontend string // where the result goes in scheduler mode
	local    bool   // from a frontend in this process: no message size limit
}

// execution is a request being run, as far as cancelling it goes.
type execution struct {
	queryID uint64
	ctx     context.Context
	cancel  context.CancelFunc
}

// serve runs the requests that recv returns, one at a time, answering each
// with answer, until the stream breaks, the peer shuts down (errShutdown)
// or ctx is done while no request runs. cancel closes the stream.
//
// A reader goroutine calls recv, so that a CANCEL or a broken stream
// cancels the running request at once. It tracks the running request
// itself: messages arrive in order and a CANCEL always precedes the next
// request, so a CANCEL applies to the request the reader handed out last.
func (w *Worker) serve(ctx context.Context, cancel context.CancelFunc, bo *backoff.Backoff, recv func() incoming, answer func(context.Context, *work) error) error {
	w.metrics.streams.Inc()
	defer w.metrics.streams.Dec()

	var (
		mtx     sync.Mutex
		current *execution
	)
	in := make(chan incoming)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m := recv()
			switch {
			case m.err != nil:
				mtx.Lock()
				if current != nil {
					current.cancel()
				}
				mtx.Unlock()
			case m.kind == kindCancel:
				mtx.Lock()
				if current != nil && current.queryID == m.queryID {
					current.cancel()
				}
				mtx.Unlock()
				continue
			case m.kind == kindRequest:
				execCtx, execCancel := context.WithCancel(context.Background())
				m.exec = &execution{queryID: m.queryID, ctx: execCtx, cancel: execCancel}
				m.work.queryID = m.queryID
				mtx.Lock()
				current = m.exec
				mtx.Unlock()
			}
			select {
			case in <- m:
			case <-done:
				if m.exec != nil {
					m.exec.cancel()
				}
				return
			}
			if m.err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		close(done)
		wg.Wait()
	}()

	for {
		var m incoming
		select {
		case <-ctx.Done():
			return nil
		case m = <-in:
		}
		switch {
		case m.err != nil:
			return m.err
		case m.kind == kindShutdown:
			return errShutdown
		}
		err := answer(m.exec.ctx, m.work)
		m.exec.cancel()
		mtx.Lock()
		if current == m.exec {
			current = nil
		}
		mtx.Unlock()
		if err != nil {
			return err
		}
		bo.Reset()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// execute runs wk against the handler and returns the answer, and the
// statistics when asked for.
func (w *Worker) execute(ctx context.Context, wk *work) (*frontendpb.HTTPResponse, *frontendpb.QueryStats) {
	start := time.Now()
	st := &querier.Stats{}
	ctx = querier.WithStats(ctx, st)
	resp := w.run(ctx, wk)
	// Answers to a frontend in this process are not encoded: no limit.
	if !wk.local {
		if size := proto.Size(resp); size > w.cfg.GRPCMaxSendMsgSize-1024 {
			resp = errorResponse(http.StatusRequestEntityTooLarge, fmt.Sprintf("response larger than the max message size (%d vs %d bytes)", size, w.cfg.GRPCMaxSendMsgSize))
		}
	}
	w.metrics.requests.WithLabelValues(strconv.Itoa(int(resp.GetCode()))).Inc()
	if !wk.stats {
		return resp, nil
	}
	return resp, &frontendpb.QueryStats{
		WallTimeNanoseconds: int64(time.Since(start)),
		FetchedSeries:       st.Series.Load(),
		FetchedChunks:       st.Chunks.Load(),
		FetchedBytes:        st.Bytes.Load(),
	}
}

func (w *Worker) run(ctx context.Context, wk *work) (resp *frontendpb.HTTPResponse) {
	if wk.req == nil || wk.tenant == "" {
		return errorResponse(http.StatusBadRequest, "a query needs a tenant and a request")
	}
	req, err := frontendpb.ToHTTPRequest(ctx, wk.req, wk.tenant)
	if err != nil {
		return errorResponse(http.StatusBadRequest, err.Error())
	}
	rec := &recorder{header: http.Header{}}
	defer func() {
		// A bug must cost one request a 500, not the querier.
		if p := recover(); p != nil {
			w.logger.Error("panic running a query", "tenant", wk.tenant, "url", wk.req.GetUrl(), "panic", p)
			resp = errorResponse(http.StatusInternalServerError, fmt.Sprintf("internal error: %v", p))
		}
	}()
	w.handler.ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	return &frontendpb.HTTPResponse{
		Code:    int32(rec.code),
		Headers: frontendpb.FromHTTPHeader(rec.header),
		Body:    rec.body.Bytes(),
	}
}

func errorResponse(code int, msg string) *frontendpb.HTTPResponse {
	return &frontendpb.HTTPResponse{
		Code:    int32(code),
		Headers: []*frontendpb.Header{{Name: "Content-Type", Values: []string{"text/plain; charset=utf-8"}}},
		Body:    []byte(msg),
	}
}

// recorder is an http.ResponseWriter that keeps the response.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

var _ http.Flusher = (*recorder)(nil)

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}

// Flush does nothing: the response is sent whole.
func (r *recorder) Flush() {}

// frontendPool holds the connections to the frontends that scheduled
// queries' results go to.
type frontendPool struct {
	maxRecv, maxSend int

	mtx   sync.Mutex
	conns map[string]*pooledConn
}

type pooledConn struct {
	conn     *grpc.ClientConn
	client   frontendpb.FrontendClient
	lastUsed time.Time
}

func newFrontendPool(maxRecv, maxSend int) *frontendPool {
	return &frontendPool{maxRecv: maxRecv, maxSend: maxSend, conns: map[string]*pooledConn{}}
}

func (p *frontendPool) get(addr string) (frontendpb.FrontendClient, error) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	pc := p.conns[addr]
	if pc == nil {
		conn, err := frontendpb.Dial(addr, p.maxRecv, p.maxSend)
		if err != nil {
			return nil, fmt.Errorf("dial frontend %s: %w", addr, err)
		}
		pc = &pooledConn{conn: conn, client: frontendpb.NewFrontendClient(conn)}
		p.conns[addr] = pc
	}
	pc.lastUsed = time.Now()
	return pc.client, nil
}

// closeIdle closes the connections unused since before.
func (p *frontendPool) closeIdle(before time.Time) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	for addr, pc := range p.conns {
		if pc.lastUsed.Before(before) {
			pc.conn.Close()
			delete(p.conns, addr)
		}
	}
}

func (p *frontendPool) close() {
	p.closeIdle(time.Now().Add(time.Hour))
}
