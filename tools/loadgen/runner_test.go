package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// storeQueryAPI answers the verifier's query_range from what a receiver
// stored, as a store would: each step's window holds only the sample at its
// own timestamp. Samples before dropBefore (ms) are lost, as if the store
// had not kept them.
type storeQueryAPI struct {
	rc         *receiver
	dropBefore int64
}

func (q *storeQueryAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := queryRE.FindStringSubmatch(r.FormValue("query"))
	start, err1 := parseAPITime(r.FormValue("start"))
	end, err2 := parseAPITime(r.FormValue("end"))
	stepSeconds, err3 := strconv.ParseFloat(r.FormValue("step"), 64)
	if m == nil || err1 != nil || err2 != nil || err3 != nil {
		http.Error(w, "bad query", http.StatusBadRequest)
		return
	}
	stepMs := int64(stepSeconds * 1000)
	tenant := r.Header.Get("X-Scope-OrgID")

	q.rc.mu.Lock()
	bySeries := map[string]map[string]any{}
	var order []string
	for _, s := range q.rc.stored {
		if s.tenant != tenant || s.labels[0].Value != m[1] || s.ts < start || s.ts > end || (s.ts-start)%stepMs != 0 || s.ts < q.dropBefore {
			continue
		}
		key := seriesKey(s.labels)
		e, ok := bySeries[key]
		if !ok {
			metric := map[string]string{}
			for _, l := range s.labels {
				metric[l.Name] = l.Value
			}
			e = map[string]any{"metric": metric, "values": [][2]any{}}
			bySeries[key] = e
			order = append(order, key)
		}
		e["values"] = append(e["values"].([][2]any), [2]any{json.Number(formatAPITime(s.ts)), strconv.FormatFloat(s.value, 'f', -1, 64)})
	}
	q.rc.mu.Unlock()
	result := make([]map[string]any, 0, len(order))
	for _, k := range order {
		result = append(result, bySeries[k])
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"status": "success",
		"data":   map[string]any{"resultType": "matrix", "result": result},
	})
}

// finalReport returns the key: value lines of the final report in out.
func finalReport(t *testing.T, out string) map[string]string {
	i := strings.Index(out, "report: final\n")
	require.GreaterOrEqual(t, i, 0, "a final report in %q", out)
	figs := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out[i:]))
	for sc.Scan() && sc.Text() != "" {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		require.True(t, ok, sc.Text())
		figs[k] = v
	}
	return figs
}

// TestRunBackfill runs loadgen's sending phase against a fake remote-write
// server, then its verification against a query API serving what that
// server stored, and requires, per series, one sample per interval from
// the first backfilled step to the last live one, on the run's grid of
// timestamps, with no duplicate, gap or disorder at the hand-over; each
// value what the generator gives for the step; the backfill at generation
// 0; and the report and verification counting the backfill.
func TestRunBackfill(t *testing.T) {
	const active = 40
	for _, tc := range []struct {
		name string
		args []string
		// wantBackfillSteps are the steps before the start; the backfill
		// may write more if it has to catch up with the clock.
		wantBackfillSteps int64
		wantLive          bool
		wantLiveSamples   int64
		churn             bool
		// dropBackfill makes the store lose the backfilled samples.
		dropBackfill bool
	}{
		{
			name: "backfill only",
			args: []string{"-backfill", "5s", "-interval", "1s", "-duration", "0", "-samples", "0"},
			// With no live run to hand over to, the backfill stops at the start.
			wantBackfillSteps: 5,
		},
		{
			name:              "backfill rounded down to whole intervals",
			args:              []string{"-backfill", "3500ms", "-interval", "1s", "-duration", "0", "-samples", "0"},
			wantBackfillSteps: 3,
		},
		{
			name:              "backfill then live",
			args:              []string{"-backfill", "1s", "-interval", "100ms", "-duration", "0", "-samples", strconv.Itoa(3 * active)},
			wantBackfillSteps: 10, wantLive: true, wantLiveSamples: 3 * active,
		},
		{
			name: "backfill then live with churn, remote write 2.0",
			args: []string{"-backfill", "1s", "-interval", "100ms", "-duration", "0", "-samples", strconv.Itoa(3 * active),
				"-churn", "12000", "-remote-write-version", "2.0"},
			wantBackfillSteps: 10, wantLive: true, wantLiveSamples: 3 * active, churn: true,
		},
		{
			name:              "backfill shorter than an interval writes nothing",
			args:              []string{"-backfill", "99ms", "-interval", "100ms", "-duration", "0", "-samples", strconv.Itoa(2 * active)},
			wantBackfillSteps: 0, wantLive: true, wantLiveSamples: 2 * active,
		},
		{
			name:              "verify misses a lost backfill",
			args:              []string{"-backfill", "5s", "-interval", "1s", "-duration", "0", "-samples", "0"},
			wantBackfillSteps: 5, dropBackfill: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := &receiver{respond: always(http.StatusNoContent), versions: map[string]int{}, attempts: map[string]int{}, tenants: map[string]int{}, last: map[string]int64{}}
			push := httptest.NewServer(rc)
			defer push.Close()
			store := &storeQueryAPI{rc: rc}
			query := httptest.NewServer(store)
			defer query.Close()

			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			var cfg Config
			cfg.RegisterFlags(fs)
			require.NoError(t, fs.Parse(append([]string{
				"-url", push.URL + "/api/v1/push", "-query-url", query.URL + "/prometheus",
				"-tenants", "a,b", "-active-series", strconv.Itoa(active), "-labels-per-series", "6",
				"-series-per-request", "7", "-concurrency", "3", "-report-interval", "0", "-min-backoff", "1ms",
			}, tc.args...)))
			require.NoError(t, cfg.Validate())
			require.Equal(t, tc.wantBackfillSteps, cfg.BackfillSteps())
			require.Equal(t, tc.wantLive, cfg.LiveRun())
			var out bytes.Buffer
			r, err := newRunner(cfg, slog.New(slog.DiscardHandler), &out)
			require.NoError(t, err)

			before := time.Now().UnixMilli()
			_, err = r.send(context.Background())
			require.NoError(t, err)
			after := time.Now().UnixMilli()

			intervalMs := cfg.Interval.Milliseconds()
			origin, steps := r.originMs, r.acks.Steps()
			// The start, when loadgen began, is the backfill's end.
			start := origin + tc.wantBackfillSteps*intervalMs
			require.GreaterOrEqual(t, start, before)
			require.LessOrEqual(t, start, after)

			bf := r.bfStats.Snapshot(time.Now())
			live := r.stats.Snapshot(time.Now())
			liveSteps := live.StepsSent
			bfSteps := bf.StepsSent
			require.Equal(t, steps, bfSteps+liveSteps, "every step is the backfill's or the live run's")
			if tc.wantLive {
				require.GreaterOrEqual(t, bfSteps, tc.wantBackfillSteps, "the backfill writes the steps before the start, and those due while it did")
				require.Equal(t, origin+bfSteps*intervalMs, r.startMs, "the live run goes on right after the backfill")
				require.Equal(t, tc.wantLiveSamples, live.SamplesAcked)
			} else {
				require.Equal(t, tc.wantBackfillSteps, bfSteps)
				require.Zero(t, liveSteps)
				require.Zero(t, r.startMs, "no live run")
			}
			require.Equal(t, bfSteps*active, bf.SamplesAcked)

			// Each series, over its generations, has one sample at each
			// step's timestamp, with the generator's value.
			rc.mu.Lock()
			require.Zero(t, rc.outOfOrder, "every series' samples in time order")
			slotOf := map[string]int{}
			genOf := map[string]int64{}
			for slot := range active {
				for g := int64(0); g <= r.gen.Generation(slot, steps); g++ {
					key := seriesKey(r.gen.Labels(slot, g)) + r.gen.MetricName(slot)
					slotOf[key], genOf[key] = slot, g
				}
			}
			seen := map[[2]int64]bool{} // slot, step
			var backfilled, churned int64
			for _, s := range rc.stored {
				key := seriesKey(s.labels) + s.labels[0].Value
				slot, ok := slotOf[key]
				require.True(t, ok, "unknown series %v", s.labels)
				require.Zero(t, (s.ts-origin)%intervalMs, "on the grid of the run")
				k := (s.ts - origin) / intervalMs
				require.GreaterOrEqual(t, k, int64(0))
				require.Less(t, k, steps)
				require.False(t, seen[[2]int64{int64(slot), k}], "slot %d step %d written twice", slot, k)
				seen[[2]int64{int64(slot), k}] = true
				g := genOf[key]
				require.Equal(t, r.gen.Generation(slot, k), g, "slot %d step %d", slot, k)
				require.Equal(t, r.gen.Value(slot, g, k), s.value, "slot %d step %d", slot, k)
				if k < bfSteps {
					backfilled++
					if k < tc.wantBackfillSteps {
						require.Zero(t, g, "the backfill before the start writes the series as they are at the start")
						require.Less(t, s.ts, start)
					}
				}
				if g > 0 {
					churned++
				}
			}
			rc.mu.Unlock()
			require.Len(t, seen, int(steps*active), "no step of a series missing")
			require.Equal(t, bf.SamplesAcked, backfilled)
			if tc.churn {
				require.NotZero(t, churned, "the live run churns")
			}

			figs := finalReport(t, out.String())
			require.Equal(t, strconv.FormatInt(live.SamplesAcked, 10), figs["samples_acknowledged"])
			require.Equal(t, strconv.FormatInt(bf.SamplesAcked, 10), figs["backfill_samples_acknowledged"])
			require.Equal(t, strconv.FormatInt(bfSteps, 10), figs["backfill_steps"])

			if tc.dropBackfill {
				store.dropBefore = start
			}
			res, err := r.verify(context.Background())
			http.DefaultClient.CloseIdleConnections()
			require.NoError(t, err)
			total := bf.SamplesAcked + live.SamplesAcked
			want := VerifyResult{Expected: total, Found: total, Queries: res.Queries}
			if tc.dropBackfill {
				want.Found, want.Missing = total-bf.SamplesAcked, bf.SamplesAcked
			}
			require.Equal(t, want, res)
			require.Contains(t, out.String(), "verify_expected_samples: "+strconv.FormatInt(total, 10)+"\n")
		})
	}
}

// TestStepsDue pins down the backfill's catching up: how many steps, from
// next on, have a timestamp that is not in the future.
func TestStepsDue(t *testing.T) {
	const origin, interval = int64(1_700_000_000_000), int64(15000)
	for _, tc := range []struct {
		name string
		now  int64 // after origin
		next int64
		want int64
	}{
		{"caught up: the next step is ahead", 10*interval - 1, 10, 0},
		{"the next step falls due on its timestamp", 10 * interval, 10, 1},
		{"two more fell due", 11*interval + 5, 10, 2},
		{"ahead of the clock", 3 * interval, 10, 0},
		{"before the origin", -1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, stepsDue(origin, interval, origin+tc.now, tc.next))
		})
	}
}
