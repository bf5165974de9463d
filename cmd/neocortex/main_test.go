package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
)

// The test binary doubles as the neocortex binary: with this variable set it
// runs main with the arguments in it (JSON), so tests can SIGKILL a real
// process without building one.
const childArgsEnv = "NEOCORTEX_TEST_CHILD_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(childArgsEnv); args != "" {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			panic(err)
		}
		os.Args = append([]string{"neocortex"}, a...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type child struct {
	t        *testing.T
	cmd      *exec.Cmd
	httpAddr string
	logs     *syncBuffer
	done     chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startChild runs the binary with the default target on free ports and the
// given data directory, and waits until it is ready.
func startChild(t *testing.T, dataDir string) *child {
	t.Helper()
	httpPort, grpcPort := freePort(t), freePort(t)
	args := []string{
		"-server.http-listen-address=127.0.0.1", "-server.http-listen-port=" + strconv.Itoa(httpPort),
		"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=" + strconv.Itoa(grpcPort),
		"-ingester.data-dir=" + dataDir, "-ingester.ring.instance-id=child",
		"-ingester.ring.heartbeat-period=200ms",
		// Everything else beside it, kept across restarts of the child.
		"-storage.filesystem.dir=" + filepath.Join(filepath.Dir(dataDir), "bucket"),
		"-store-gateway.data-dir=" + filepath.Join(filepath.Dir(dataDir), "store-gateway"),
		"-compactor.data-dir=" + filepath.Join(filepath.Dir(dataDir), "compactor"),
	}
	return runChild(t, args, "", fmt.Sprintf("127.0.0.1:%d", httpPort))
}

// runChild runs the binary with args in dir (the test's own when empty) and
// waits until httpAddr answers /ready.
func runChild(t *testing.T, args []string, dir, httpAddr string) *child {
	t.Helper()
	enc, err := json.Marshal(args)
	require.NoError(t, err)
	c := &child{t: t, httpAddr: httpAddr, logs: &syncBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Dir = dir
	c.cmd.Env = append(os.Environ(), childArgsEnv+"="+string(enc))
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	require.NoError(t, c.cmd.Start())
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + c.httpAddr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		select {
		case <-c.done:
			t.Fatalf("neocortex exited before it was ready:\n%s", c.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("neocortex not ready after 60s:\n%s", c.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *child) signal(sig syscall.Signal) int {
	c.t.Helper()
	require.NoError(c.t, c.cmd.Process.Signal(sig))
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		c.t.Fatalf("neocortex did not exit after %s:\n%s", sig, c.logs.String())
	}
	return c.cmd.ProcessState.ExitCode()
}

// TestRestartAfterSignal writes through a real process, stops it with
// SIGTERM or SIGKILL after the last acknowledged push, starts it again on the
// same data directory and reads back every acknowledged sample.
func TestRestartAfterSignal(t *testing.T) {
	for _, tc := range []struct {
		sig      syscall.Signal
		wantExit int
	}{
		{syscall.SIGTERM, 0},
		{syscall.SIGKILL, -1},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "tsdb")
			c := startChild(t, dataDir)
			rw := &remotewrite.Client{URL: "http://" + c.httpAddr + "/api/v1/push", Tenant: "t1"}
			base := time.Now().Add(-3 * time.Minute).Truncate(time.Second)
			const nSeries, nSamples = 100, 30
			for m := 0; m < nSamples; m++ {
				req := &prompb.WriteRequest{}
				for s := 0; s < nSeries; s++ {
					req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
						Labels:  []prompb.Label{{Name: "__name__", Value: "acked"}, {Name: "s", Value: strconv.Itoa(s)}},
						Samples: []prompb.Sample{{Timestamp: base.Add(time.Duration(m) * time.Second).UnixMilli(), Value: float64(s*nSamples + m)}},
					})
				}
				require.NoError(t, rw.Push(context.Background(), req))
			}
			exit := c.signal(tc.sig)
			require.Equal(t, tc.wantExit, exit, c.logs.String())
			if tc.sig == syscall.SIGTERM {
				require.Contains(t, c.logs.String(), "neocortex stopped")
			}

			c2 := startChild(t, dataDir)
			// Every sample: count and sum over the whole range.
			end := base.Add(time.Duration(nSamples-1) * time.Second)
			got := instant(t, c2, "t1", fmt.Sprintf("count_over_time(acked[%ds])", nSamples), end)
			require.Len(t, got, nSeries)
			for _, v := range got {
				require.Equal(t, float64(nSamples), v)
			}
			sum := instant(t, c2, "t1", fmt.Sprintf("sum(sum_over_time(acked[%ds]))", nSamples), end)
			want := 0.0
			for i := 0; i < nSeries*nSamples; i++ {
				want += float64(i)
			}
			require.Equal(t, map[string]float64{"{}": want}, sum)
			require.Equal(t, 0, c2.signal(syscall.SIGTERM))
		})
	}
}

// TestZeroConfigStart runs the binary as the README's first line does: no
// flags, no config file, in an empty directory. It must become ready on the
// default ports, keep its data under ./data, and serve pushes and queries.
func TestZeroConfigStart(t *testing.T) {
	for _, port := range []string{"8080", "9095"} {
		l, err := net.Listen("tcp", ":"+port)
		if err != nil {
			t.Skipf("default port %s is in use on this machine: %v", port, err)
		}
		l.Close()
	}
	dir := t.TempDir()
	// The binary runs with the args "-test.run=^$" stripped: only its own.
	c := runChild(t, []string{}, dir, "127.0.0.1:8080")
	ts := time.Now().Truncate(time.Second)
	rw := &remotewrite.Client{URL: "http://127.0.0.1:8080/api/v1/push", Tenant: "first"}
	require.NoError(t, rw.Push(context.Background(), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "hello"}},
		Samples: []prompb.Sample{{Timestamp: ts.UnixMilli(), Value: 1}},
	}}}))
	require.Equal(t, map[string]float64{"{__name__=hello}": 1}, instant(t, c, "first", "hello", ts))
	_, err := os.Stat(filepath.Join(dir, "data", "tsdb", "first", "wal"))
	require.NoError(t, err, "the tenant's WAL is under ./data")
	require.Equal(t, 0, c.signal(syscall.SIGTERM))
}

func instant(t *testing.T, c *child, tenant, q string, ts time.Time) map[string]float64 {
	t.Helper()
	v := url.Values{"query": {q}, "time": {strconv.FormatInt(ts.Unix(), 10)}}
	req, err := http.NewRequest(http.MethodGet, "http://"+c.httpAddr+"/prometheus/api/v1/query?"+v.Encode(), nil)
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, string(b))
	var body struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(b, &body))
	out := map[string]float64{}
	for _, r := range body.Data.Result {
		f, err := strconv.ParseFloat(r.Value[1].(string), 64)
		require.NoError(t, err)
		keys := make([]string, 0, len(r.Metric))
		for k, v := range r.Metric {
			keys = append(keys, k+"="+v)
		}
		out["{"+strings.Join(keys, ",")+"}"] = f
	}
	return out
}
