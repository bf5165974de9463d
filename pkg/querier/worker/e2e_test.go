package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/frontendpb"
	"github.com/neocortex-metrics/neocortex/pkg/frontend/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRoundTrip(t *testing.T) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			c := newCluster(t, m, queueConfig(100, 0))
			state := newAPI()
			c.addWorker("querier-1", 2, "", state.as("querier-1"))
			c.addWorker("querier-2", 2, "", state.as("querier-2"))
			c.waitQueriers(2)

			for _, tc := range []struct {
				name     string
				tenant   string
				url      string
				wantCode int
				wantBody string // with the querier's name replaced by Q
			}{
				{name: "query", tenant: "team-a", url: "/api/v1/query?q=up", wantCode: 200, wantBody: "querier=Q tenant=team-a header=team-a path=/api/v1/query q=up"},
				{name: "another tenant", tenant: "team-b", url: "/api/v1/labels", wantCode: 200, wantBody: "querier=Q tenant=team-b header=team-b path=/api/v1/labels q="},
				{name: "querier error is an answer", tenant: "team-a", url: "/fail", wantCode: 500, wantBody: "boom\n"},
				{name: "querier panic is a 500", tenant: "team-a", url: "/panic", wantCode: 500, wantBody: "internal error: boom"},
				{name: "queriers still serve after errors", tenant: "team-a", url: "/after", wantCode: 200, wantBody: "querier=Q tenant=team-a header=team-a path=/after q="},
			} {
				t.Run(tc.name, func(t *testing.T) {
					// Enough requests to go through every stream.
					for range 6 {
						resp, err := c.get(context.Background(), tc.tenant, tc.url)
						require.NoError(t, err)
						require.Equal(t, tc.wantCode, int(resp.GetCode()))
						body := string(resp.GetBody())
						if tc.wantCode == 200 {
							q := frontendpb.ToHTTPHeader(resp.GetHeaders()).Get("X-Querier")
							require.Contains(t, []string{"querier-1", "querier-2"}, q)
							body = strings.Replace(body, q, "Q", 1)
						}
						require.Equal(t, tc.wantBody, body)
					}
				})
			}

			t.Run("stats", func(t *testing.T) {
				st := &transport.Stats{}
				_, err := c.get(transport.WithStats(context.Background(), st), "team-a", "/api/v1/query")
				require.NoError(t, err)
				require.Positive(t, st.WallTime.Load())
				require.EqualValues(t, 3, st.FetchedSeries.Load())
				require.EqualValues(t, 100, st.FetchedBytes.Load())
			})

			t.Run("no tenant", func(t *testing.T) {
				_, err := c.frontend.RoundTrip(context.Background(), nil)
				require.Equal(t, http.StatusUnauthorized, transport.StatusCode(err))
			})
		})
	}
}

func TestCancelQueuedRequest(t *testing.T) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			c := newCluster(t, m, queueConfig(100, 0))
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				_, err := c.get(ctx, "team-a", "/never")
				errc <- err
			}()
			require.Eventually(t, func() bool { return c.queueLength("team-a") == 1 }, 5*time.Second, 10*time.Millisecond)
			cancel()
			require.ErrorIs(t, <-errc, context.Canceled)
			require.Eventually(t, func() bool { return c.queueLength("team-a") == 0 }, 5*time.Second, 10*time.Millisecond, "removed from the queue")

			// A querier that connects now never sees it.
			state := newAPI()
			c.addWorker("querier-1", 1, "", state.as("querier-1"))
			resp, err := c.get(context.Background(), "team-a", "/next")
			require.NoError(t, err)
			require.Contains(t, string(resp.GetBody()), "path=/next")
			require.EqualValues(t, 1, state.served.Load())
		})
	}
}

func TestCancelRunningRequest(t *testing.T) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			c := newCluster(t, m, queueConfig(100, 0))
			state := newAPI()
			// One stream: the next request needs the same stream.
			c.addWorker("querier-1", 1, "", state.as("querier-1"))
			c.waitQueriers(1)

			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				_, err := c.get(ctx, "team-a", "/slow")
				errc <- err
			}()
			require.Equal(t, "team-a", <-state.started)
			cancel()
			require.ErrorIs(t, <-errc, context.Canceled)
			select {
			case <-state.cancelled:
			case <-time.After(5 * time.Second):
				t.Fatal("the querier was not told to cancel")
			}

			resp, err := c.get(context.Background(), "team-a", "/next")
			require.NoError(t, err)
			require.Contains(t, string(resp.GetBody()), "path=/next")
		})
	}
}

func TestQuerierDiesMidRequest(t *testing.T) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			c := newCluster(t, m, queueConfig(100, 0))
			state := newAPI()
			p := newProxy(t, c.pullAddr)
			c.addWorker("querier-1", 1, p.addr(), state.as("querier-1"))
			c.waitQueriers(1)

			errc := make(chan error, 1)
			go func() {
				_, err := c.get(context.Background(), "team-a", "/slow")
				errc <- err
			}()
			<-state.started
			start := time.Now()
			p.kill()
			select {
			case err := <-errc:
				require.ErrorIs(t, err, transport.ErrQuerierFailed)
				require.Equal(t, http.StatusBadGateway, transport.StatusCode(err))
				require.Less(t, time.Since(start), 5*time.Second)
			case <-time.After(10 * time.Second):
				t.Fatal("RoundTrip did not notice the querier's death")
			}
			// The worker sees its stream break and abandons the request.
			<-state.cancelled
			c.waitQueriers(0)

			// Another querier takes the next request.
			c.addWorker("querier-2", 1, "", state.as("querier-2"))
			resp, err := c.get(context.Background(), "team-a", "/next")
			require.NoError(t, err)
			require.Contains(t, string(resp.GetBody()), "querier=querier-2")
		})
	}
}

func TestFairness(t *testing.T) {
	const backlog = 500
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			c := newCluster(t, m, queueConfig(backlog, 0))
			state := newAPI()
			const parallelism = 2
			c.addWorker("querier-1", parallelism, "", state.as("querier-1"))
			c.waitQueriers(1)

			// Tenant A fills both streams and then its whole queue.
			var wg sync.WaitGroup
			var mtx sync.Mutex
			errs := map[string]int{}
			send := func(n int) {
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						resp, err := c.get(context.Background(), "team-a", "/slow")
						mtx.Lock()
						defer mtx.Unlock()
						switch {
						case err != nil:
							errs[err.Error()]++
						case resp.GetCode() != 200:
							errs[fmt.Sprint(resp.GetCode())]++
						}
					}()
				}
			}
			send(parallelism)
			for range parallelism {
				require.Equal(t, "team-a", <-state.started)
			}
			send(backlog)
			require.Eventually(t, func() bool { return c.queueLength("team-a") == backlog }, 20*time.Second, 10*time.Millisecond)

			_, err := c.get(context.Background(), "team-a", "/slow")
			require.ErrorIs(t, err, transport.ErrTooManyRequests)
			require.Equal(t, http.StatusTooManyRequests, transport.StatusCode(err))

			// B's request is next as soon as a stream is free, ahead of A's backlog.
			done := make(chan error, 1)
			go func() {
				resp, err := c.get(context.Background(), "team-b", "/fast")
				if err == nil && !strings.Contains(string(resp.GetBody()), "tenant=team-b") {
					err = errors.New(string(resp.GetBody()))
				}
				done <- err
			}()
			require.Eventually(t, func() bool { return c.queueLength("team-b") == 1 }, 5*time.Second, 10*time.Millisecond)
			state.block <- struct{}{}
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Fatal("tenant B starves behind tenant A")
			}
			require.GreaterOrEqual(t, c.queueLength("team-a"), float64(backlog-parallelism), "A's backlog still waits")

			state.releaseAll()
			wg.Wait()
			require.Empty(t, errs)
		})
	}
}

func TestShuffleSharding(t *testing.T) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			c := newCluster(t, m, queueConfig(100, 1))
			state := newAPI()
			queriers := []string{"querier-1", "querier-2", "querier-3"}
			for _, id := range queriers {
				c.addWorker(id, 2, "", state.as(id))
			}
			c.waitQueriers(len(queriers))

			for i := range 6 {
				tenantID := fmt.Sprint("tenant-", i)
				seen := map[string]int{}
				var wg sync.WaitGroup
				var mtx sync.Mutex
				for range 20 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						resp, err := c.get(context.Background(), tenantID, "/api/v1/query")
						require.NoError(t, err)
						mtx.Lock()
						seen[frontendpb.ToHTTPHeader(resp.GetHeaders()).Get("X-Querier")]++
						mtx.Unlock()
					}()
				}
				wg.Wait()
				require.Len(t, seen, 1, "%s ran on %v", tenantID, seen)
			}
		})
	}
}

func TestFrontendStops(t *testing.T) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			c := newCluster(t, m, queueConfig(100, 0))
			state := newAPI()
			c.addWorker("querier-1", 2, "", state.as("querier-1"))
			c.waitQueriers(1)
			_, err := c.get(context.Background(), "team-a", "/first")
			require.NoError(t, err)

			require.NoError(t, services.StopAndAwaitTerminated(context.Background(), c.frontend))
			_, err = c.get(context.Background(), "team-a", "/after")
			require.ErrorIs(t, err, transport.ErrStopped)
			require.Equal(t, http.StatusServiceUnavailable, transport.StatusCode(err))
		})
	}
}

func TestStopWithQueuedRequests(t *testing.T) {
	// No querier: the queued request fails when the frontend stops.
	c := newCluster(t, direct, queueConfig(100, 0))
	errc := make(chan error, 1)
	go func() {
		_, err := c.get(context.Background(), "team-a", "/never")
		errc <- err
	}()
	require.Eventually(t, func() bool { return c.queueLength("team-a") == 1 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), c.frontend))
	require.ErrorIs(t, <-errc, transport.ErrStopped)
}
