package transport

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/grafana/dskit/backoff"
	"google.golang.org/grpc"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/frontendpb"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// backoffConfig paces the reconnections to a scheduler.
var backoffConfig = backoff.Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}

// query is a request of scheduler mode, from its enqueueing until its
// RoundTrip returns.
type query struct {
	id     uint64
	tenant string
	// events are acknowledgements and errors from the scheduler and the
	// result from the querier; sends never block (see deliver).
	events chan event
}

type event struct {
	status frontendpb.SchedulerToFrontend_Status
	msg    string
	res    *result // the querier's answer
	err    error   // the scheduler stream broke
}

// deliver queues ev for the query's RoundTrip. A query gets at most an
// acknowledgement, one error and one result per scheduler it tries, so the
// buffer only fills when the RoundTrip has returned.
func (q *query) deliver(ev event) {
	select {
	case q.events <- ev:
	default:
	}
}

// schedulerClient is the stream to one scheduler and the queries sent on it.
type schedulerClient struct {
	addr string
	conn *grpc.ClientConn

	mtx     sync.Mutex
	stream  frontendpb.Scheduler_FrontendLoopClient // nil while disconnected
	queries map[uint64]*query
}

func (sc *schedulerClient) connected() bool {
	sc.mtx.Lock()
	defer sc.mtx.Unlock()
	return sc.stream != nil
}

// enqueue sends msg for q; false when the scheduler is not connected or the
// send failed.
func (sc *schedulerClient) enqueue(q *query, msg *frontendpb.FrontendToScheduler) bool {
	sc.mtx.Lock()
	defer sc.mtx.Unlock()
	if sc.stream == nil {
		return false
	}
	sc.queries[q.id] = q
	if err := sc.stream.Send(msg); err != nil {
		delete(sc.queries, q.id)
		return false
	}
	return true
}

// forget stops routing the scheduler's messages about q; with cancel, the
// scheduler is told to drop q.
func (sc *schedulerClient) forget(q *query, cancel bool) {
	sc.mtx.Lock()
	defer sc.mtx.Unlock()
	if _, ok := sc.queries[q.id]; !ok {
		return
	}
	delete(sc.queries, q.id)
	if cancel && sc.stream != nil {
		// A failed send breaks the stream; its reader sees it.
		_ = sc.stream.Send(&frontendpb.FrontendToScheduler{Type: frontendpb.FrontendToScheduler_CANCEL, QueryId: q.id})
	}
}

func (sc *schedulerClient) dispatch(m *frontendpb.SchedulerToFrontend) {
	sc.mtx.Lock()
	q := sc.queries[m.GetQueryId()]
	sc.mtx.Unlock()
	if q != nil {
		q.deliver(event{status: m.GetStatus(), msg: m.GetError()})
	}
}

func (sc *schedulerClient) setStream(s frontendpb.Scheduler_FrontendLoopClient) {
	sc.mtx.Lock()
	defer sc.mtx.Unlock()
	sc.stream = s
}

// closeStream fails the queries sent on the broken stream: the scheduler
// dropped the queued ones and cancelled the running ones.
func (sc *schedulerClient) closeStream(err error) {
	sc.mtx.Lock()
	defer sc.mtx.Unlock()
	sc.stream = nil
	for id, q := range sc.queries {
		q.deliver(event{err: fmt.Errorf("%w: %s: %w", ErrSchedulerFailed, sc.addr, err)})
		delete(sc.queries, id)
	}
}

// schedulerLoop keeps a FrontendLoop stream to sc open until ctx is done.
func (f *Frontend) schedulerLoop(ctx context.Context, sc *schedulerClient) {
	bo := backoff.New(ctx, backoffConfig)
	client := frontendpb.NewSchedulerClient(sc.conn)
	for bo.Ongoing() {
		err := f.schedulerStream(ctx, sc, client, bo)
		if ctx.Err() != nil {
			return
		}
		f.logger.Warn("query-scheduler stream closed", "scheduler", sc.addr, "err", err)
		bo.Wait()
	}
}

func (f *Frontend) schedulerStream(ctx context.Context, sc *schedulerClient, client frontendpb.SchedulerClient, bo *backoff.Backoff) error {
	ctx, cancel := context.WithCancel(frontendpb.StreamContext(ctx))
	defer cancel()
	stream, err := client.FrontendLoop(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&frontendpb.FrontendToScheduler{Type: frontendpb.FrontendToScheduler_INIT, FrontendAddress: f.cfg.Address}); err != nil {
		return err
	}
	ack, err := stream.Recv()
	if err != nil {
		return err
	}
	if ack.GetStatus() != frontendpb.SchedulerToFrontend_OK {
		return fmt.Errorf("scheduler answered %s: %s", ack.GetStatus(), ack.GetError())
	}
	bo.Reset()
	sc.setStream(stream)
	f.metrics.schedulers.Inc()
	defer f.metrics.schedulers.Dec()
	for {
		m, err := stream.Recv()
		if err != nil {
			sc.closeStream(err)
			return err
		}
		sc.dispatch(m)
	}
}

func (f *Frontend) roundTripScheduler(ctx context.Context, tenantID string, req *frontendpb.HTTPRequest, statsEnabled bool) result {
	q := &query{id: f.nextID.Add(1), tenant: tenantID, events: make(chan event, 4)}
	f.mtx.Lock()
	f.queries[q.id] = q
	f.mtx.Unlock()
	defer func() {
		f.mtx.Lock()
		delete(f.queries, q.id)
		f.mtx.Unlock()
	}()
	msg := &frontendpb.FrontendToScheduler{
		Type:         frontendpb.FrontendToScheduler_ENQUEUE,
		QueryId:      q.id,
		TenantId:     tenantID,
		HttpRequest:  req,
		StatsEnabled: statsEnabled,
	}
	// Try the schedulers in turn until one takes the query.
	start := f.nextSched.Add(1)
	for i := range len(f.schedulers) {
		sc := f.schedulers[(start+uint64(i))%uint64(len(f.schedulers))]
		if !sc.enqueue(q, msg) {
			continue
		}
		res, retry := f.await(ctx, sc, q)
		if !retry {
			return res
		}
	}
	return result{err: ErrNoScheduler}
}

// await waits for the acknowledgement and the answer of q, sent through sc.
// retry says that sc refused q because it is stopping.
func (f *Frontend) await(ctx context.Context, sc *schedulerClient, q *query) (res result, retry bool) {
	acked := false
	held := true // sc may still hold q: tell it when we give up
	defer func() { sc.forget(q, held) }()
	for {
		select {
		case <-ctx.Done():
			return result{err: ctx.Err()}, false
		case ev := <-q.events:
			switch {
			case ev.res != nil:
				held = false
				return *ev.res, false
			case ev.err != nil:
				held = false
				return result{err: ev.err}, false
			case ev.status == frontendpb.SchedulerToFrontend_OK:
				acked = true
				continue
			}
			held = false
			switch {
			case ev.status == frontendpb.SchedulerToFrontend_TOO_MANY_REQUESTS:
				return result{err: ErrTooManyRequests}, false
			case ev.status == frontendpb.SchedulerToFrontend_SHUTTING_DOWN && !acked:
				return result{}, true
			case ev.status == frontendpb.SchedulerToFrontend_SHUTTING_DOWN:
				return result{err: fmt.Errorf("%w: %s is stopping", ErrSchedulerFailed, sc.addr)}, false
			case !acked:
				return result{err: fmt.Errorf("%w: %s: %s", ErrSchedulerFailed, sc.addr, ev.msg)}, false
			default:
				return result{err: fmt.Errorf("%w: %s", ErrQuerierFailed, ev.msg)}, false
			}
		}
	}
}

// QueryResult receives the answer to a query of scheduler mode from the
// querier that ran it. Answers to queries nobody waits for are dropped.
func (f *Frontend) QueryResult(ctx context.Context, r *frontendpb.QueryResultRequest) (*frontendpb.QueryResultResponse, error) {
	f.mtx.Lock()
	q := f.queries[r.GetQueryId()]
	f.mtx.Unlock()
	if q == nil {
		return &frontendpb.QueryResultResponse{}, nil
	}
	// A result for another tenant's query id is a bug somewhere; never
	// hand one tenant's data to another.
	if id, err := tenant.FromContext(ctx); err == nil && id != q.tenant {
		f.logger.Warn("dropping a query result of another tenant", "tenant", id, "query_tenant", q.tenant)
		return &frontendpb.QueryResultResponse{}, nil
	}
	if r.GetHttpResponse() == nil {
		q.deliver(event{err: fmt.Errorf("%w: answer without a response", ErrQuerierFailed)})
	} else {
		q.deliver(event{res: &result{resp: r.GetHttpResponse(), stats: r.GetStats()}})
	}
	return &frontendpb.QueryResultResponse{}, nil
}
