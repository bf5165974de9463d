//go:build integration

package integration

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// process is a child process whose output is kept for failure reports.
type process struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
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

// start runs bin with args; it is killed when the test ends, and its output
// is printed if the test failed.
func start(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	p := &process{t: t, name: name, logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	require.NoError(t, p.cmd.Start(), name)
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			out := p.logs.String()
			if len(out) > 8000 {
				out = "…" + out[len(out)-8000:]
			}
			t.Logf("--- output of %s ---\n%s", name, out)
		}
	})
	return p
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends sig and waits for the process to exit.
func (p *process) kill(sig syscall.Signal) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHTTP polls url until it answers 200, the process dies, or timeout.
func (p *process) waitHTTP(u string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if !p.running() {
			p.t.Fatalf("%s exited before %s answered:\n%s", p.name, u, p.logs.String())
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s not ready after %s:\n%s", p.name, u, timeout, p.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// handedOut are the ports freePort returned: a port handed out but not yet
// bound (a memberlist port reserved for a later process) is free to the
// kernel, which would otherwise hand it out again.
var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

// freePort returns a loopback port no one listens on and that this suite
// has not handed out before.
func freePort(t *testing.T) int {
	t.Helper()
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut[port] {
			handedOut[port] = true
			return port
		}
	}
}

// neocortex is one Neocortex process.
type neocortex struct {
	*process
	httpAddr, grpcAddr string
	args               []string
}

// startNeocortex runs the binary with the given extra args on free loopback
// ports and waits for /ready. Every directory the caller does not set is a
// temp dir: its own for the ingester, store-gateway and compactor, and the
// test's bucket (bucketDir) for the filesystem backend.
func startNeocortex(t *testing.T, name string, args ...string) *neocortex {
	t.Helper()
	// A caller that must know a port before the process starts (a
	// query-frontend tells the scheduler its own gRPC address) sets it.
	port := func(flag string) int {
		if v := flagValue(args, flag); v != "" {
			p, err := strconv.Atoi(v)
			require.NoError(t, err, flag)
			return p
		}
		return freePort(t)
	}
	httpPort, grpcPort := port("server.http-listen-port"), port("server.grpc-listen-port")
	all := append([]string{
		"-server.http-listen-address=127.0.0.1", "-server.http-listen-port=" + strconv.Itoa(httpPort),
		"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=" + strconv.Itoa(grpcPort),
		"-server.graceful-shutdown-timeout=5s",
	}, args...)
	for _, d := range []struct {
		flag string
		dir  func() string
	}{
		{"storage.filesystem.dir", func() string { return bucketDir(t) }},
		{"ingester.data-dir", t.TempDir},
		{"store-gateway.data-dir", t.TempDir},
		{"compactor.data-dir", t.TempDir},
	} {
		if flagValue(all, d.flag) == "" {
			all = append(all, "-"+d.flag+"="+d.dir())
		}
	}
	n := &neocortex{
		httpAddr: fmt.Sprintf("127.0.0.1:%d", httpPort),
		grpcAddr: fmt.Sprintf("127.0.0.1:%d", grpcPort),
		args:     all,
	}
	n.process = start(t, name, neocortexBin, all...)
	n.waitHTTP("http://"+n.httpAddr+"/ready", 60*time.Second)
	return n
}

// bucketDirs maps each test (*testing.T) to its filesystem bucket: the
// processes of a test share it as a cluster shares its object store, and
// each subtest has its own.
var bucketDirs sync.Map

// bucketDir is the test's filesystem bucket.
func bucketDir(t *testing.T) string {
	if d, ok := bucketDirs.Load(t); ok {
		return d.(string)
	}
	dir := t.TempDir()
	t.Cleanup(func() { bucketDirs.Delete(t) })
	bucketDirs.Store(t, dir)
	return dir
}

// flagValue returns the value of -name in args ("" if absent), in either
// the -name=value or the -name value form.
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// flushIngester cuts the ingester's heads into blocks and waits until they
// are in the bucket.
func (n *neocortex) flushIngester(t *testing.T) {
	t.Helper()
	resp, err := http.Post("http://"+n.httpAddr+"/ingester/flush?wait=true", "", nil)
	require.NoError(t, err, n.name)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "flush %s: %s", n.name, b)
}

// metric returns the sum of the samples of the metric name on the process's
// /metrics whose labels include every one of labels (each `key="value"`);
// -1 if it cannot be read.
func (n *neocortex) metric(name string, labels ...string) float64 {
	resp, err := http.Get("http://" + n.httpAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return -1
	}
	sum := 0.0
	for line := range strings.SplitSeq(string(b), "\n") {
		series, value, ok := strings.Cut(line, " ")
		if i := strings.LastIndexByte(line, '}'); i >= 0 { // label values may hold spaces
			series, value, ok = line[:i+1], line[i+1:], true
		}
		if !ok || strings.TrimSpace(value) == "" || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		matches := true
		for _, l := range labels {
			matches = matches && strings.Contains(series, l)
		}
		if v, err := strconv.ParseFloat(strings.Fields(value)[0], 64); err == nil && matches {
			sum += v
		}
	}
	return sum
}

// restart runs the same command again after the process exited.
func (n *neocortex) restart(t *testing.T) {
	t.Helper()
	require.False(t, n.running(), "restart of a running process")
	n.process = start(t, n.name, neocortexBin, n.args...)
	n.waitHTTP("http://"+n.httpAddr+"/ready", 60*time.Second)
}

// promResult is a Prometheus API matrix or vector result.
type promResult struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
	Value  [2]any            `json:"value"`
}

// queryRange runs a range query (tenant may be empty) against base, which is
// a Prometheus API root such as http://host/prometheus.
func queryRange(t *testing.T, base, tenant, q string, start, end time.Time, step time.Duration) map[string][][2]string {
	t.Helper()
	out, err := tryQueryRange(base, tenant, q, start, end, step)
	require.NoError(t, err)
	return out
}

// tryQueryRange is queryRange for goroutines other than the test's: it
// returns the error rather than failing the test.
func tryQueryRange(base, tenant, q string, start, end time.Time, step time.Duration) (map[string][][2]string, error) {
	v := url.Values{
		"query": {q}, "start": {strconv.FormatInt(start.Unix(), 10)},
		"end": {strconv.FormatInt(end.Unix(), 10)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	body, err := tryAPIGet(base+"/api/v1/query_range?"+v.Encode(), tenant)
	if err != nil {
		return nil, err
	}
	var res []promResult
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, err
	}
	out := map[string][][2]string{}
	for _, r := range res {
		var pts [][2]string
		for _, p := range r.Values {
			pts = append(pts, [2]string{fmt.Sprint(p[0]), p[1].(string)})
		}
		out[labelKey(r.Metric)] = pts
	}
	return out, nil
}

// instant runs an instant query and returns the vector by series.
func instant(t *testing.T, base, tenant, q string, ts time.Time) map[string]string {
	t.Helper()
	v := url.Values{"query": {q}, "time": {strconv.FormatInt(ts.Unix(), 10)}}
	body := apiGet(t, base+"/api/v1/query?"+v.Encode(), tenant)
	var res []promResult
	require.NoError(t, json.Unmarshal(body, &res))
	out := map[string]string{}
	for _, r := range res {
		out[labelKey(r.Metric)] = r.Value[1].(string)
	}
	return out
}

func apiGet(t *testing.T, u, tenant string) json.RawMessage {
	t.Helper()
	res, err := tryAPIGet(u, tenant)
	require.NoError(t, err)
	return res
}

// tryAPIGet GETs a Prometheus API URL and returns data.result of its 200
// answer.
func tryAPIGet(u, tenant string) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %d: %s", u, resp.StatusCode, b)
	}
	var env struct {
		Status string `json:"status"`
		Data   struct {
			Result json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return env.Data.Result, nil
}

func labelKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.Quote(m[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func jsonDecode(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}

// getJSON GETs u with Accept: application/json and decodes the answer.
func getJSON(u string, v any) error {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
