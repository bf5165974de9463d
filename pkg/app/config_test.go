package app_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/neocortex-metrics/neocortex/pkg/app"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func TestLoad(t *testing.T) {
	file := writeFile(t, `
target: ingester
auth_enabled: false
server:
  http_listen_port: 9000
limits:
  ingestion_rate: 5
ingester:
  ring:
    replication_factor: 3
`)
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, c *app.Config)
		wantErr string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c *app.Config) {
				require.Equal(t, []string{"all"}, []string(c.Target))
				require.True(t, c.AuthEnabled)
				require.Equal(t, 8080, c.Server.HTTPListenPort)
				require.Equal(t, 9095, c.Server.GRPCListenPort)
				require.Equal(t, "./data/tsdb", c.Ingester.DataDir)
				require.Equal(t, "inmemory", c.Ingester.Ring.KVStore.Store)
				require.Equal(t, 1, c.Ingester.Ring.ReplicationFactor)
				require.Equal(t, 2*time.Hour, c.Ingester.BlockRange)
			},
		},
		{
			name: "file",
			args: []string{"-config.file=" + file},
			check: func(t *testing.T, c *app.Config) {
				require.Equal(t, []string{"ingester"}, []string(c.Target))
				require.False(t, c.AuthEnabled)
				require.Equal(t, 9000, c.Server.HTTPListenPort)
				require.Equal(t, 9095, c.Server.GRPCListenPort) // untouched default
				require.Equal(t, 5.0, c.Limits.IngestionRate)
				require.Equal(t, 50000, c.Limits.IngestionBurstSize)
				require.Equal(t, 3, c.Ingester.Ring.ReplicationFactor)
			},
		},
		{
			name: "flags override the file",
			args: []string{"-server.http-listen-port=9100", "-config.file=" + file, "-target=distributor,querier"},
			check: func(t *testing.T, c *app.Config) {
				require.Equal(t, []string{"distributor", "querier"}, []string(c.Target))
				require.Equal(t, 9100, c.Server.HTTPListenPort)
				require.Equal(t, 5.0, c.Limits.IngestionRate)
			},
		},
		{name: "unknown field", args: []string{"-config.file=" + writeFile(t, "limits:\n  ingestion_rat: 5\n")}, wantErr: "field ingestion_rat not found"},
		{name: "unknown target", args: []string{"-target=compactorr"}, wantErr: `unknown target "compactorr"`},
		{name: "invalid limit", args: []string{"-distributor.ingestion-rate-limit=-1"}, wantErr: "ingestion_rate must be a non-negative number"},
		{name: "missing file", args: []string{"-config.file=/nonexistent.yaml"}, wantErr: "read config file"},
		{name: "bad log level", args: []string{"-log.level=loud"}, wantErr: `unknown log level "loud"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := app.Load(tc.args)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

func TestLoadExpandsEnv(t *testing.T) {
	t.Setenv("NC_TEST_PORT", "9333")
	c, err := app.Load([]string{"-config.expand-env=true", "-config.file=" + writeFile(t, "server:\n  http_listen_port: ${NC_TEST_PORT}\n")})
	require.NoError(t, err)
	require.Equal(t, 9333, c.Server.HTTPListenPort)
}

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// TestShippedConfigs loads every YAML example in the docs as what it claims
// to be, so none can drift from the code: Neocortex configs, runtime
// overrides, and Prometheus configs.
func TestShippedConfigs(t *testing.T) {
	defaults, err := app.DefaultConfig()
	require.NoError(t, err)
	for _, doc := range []string{"../../README.md", "../../docs/configuration.md", "../../docs/operations.md"} {
		b, err := os.ReadFile(doc)
		require.NoError(t, err)
		blocks := yamlBlock.FindAllStringSubmatch(string(b), -1)
		require.NotEmpty(t, blocks, doc)
		for i, m := range blocks {
			block := m[1]
			t.Run(filepath.Base(doc)+"#"+string(rune('0'+i)), func(t *testing.T) {
				switch {
				case strings.HasPrefix(block, "remote_write:"):
					_, err := promconfig.Load(block, promslog.NewNopLogger())
					require.NoError(t, err)
				case strings.HasPrefix(block, "overrides:"):
					_, err := limits.Loader(defaults.Limits)(strings.NewReader(block))
					require.NoError(t, err)
				default:
					c, err := app.Load([]string{"-config.file=" + writeFile(t, block)})
					require.NoError(t, err)
					if strings.Contains(doc, "configuration.md") && i == 0 {
						// The "defaults, spelled out" example must be exactly the defaults.
						require.Equal(t, defaults, c)
					}
				}
			})
		}
	}
}

func TestConfigEndpoint(t *testing.T) {
	cfg := testConfig(t)
	cfg.Limits.IngestionRate = 123
	a := startApp(t, cfg)
	get := func(path string) (int, string) {
		resp, err := testHTTP.Get("http://" + a.Server.HTTPAddr() + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	status, body := get("/config")
	require.Equal(t, 200, status)
	var full map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(body), &full))
	require.Equal(t, 123, full["limits"].(map[string]any)["ingestion_rate"])
	require.Equal(t, "10m0s", full["limits"].(map[string]any)["creation_grace_period"])

	status, body = get("/config?mode=diff")
	require.Equal(t, 200, status)
	var diff map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(body), &diff))
	// What the test changed from the defaults, and nothing else.
	require.Equal(t, 123, diff["limits"].(map[string]any)["ingestion_rate"])
	require.Len(t, diff["limits"], 1)
	require.NotContains(t, diff, "distributor")
	require.Equal(t, "127.0.0.1", diff["server"].(map[string]any)["http_listen_address"])

	status, _ = get("/config?mode=nonsense")
	require.Equal(t, http.StatusBadRequest, status)

	status, body = get("/services")
	require.Equal(t, 200, status)
	require.Equal(t, "compactor: Running\ndistributor: Running\ningester: Running\ningester-ring: Running\nquerier: Running\nquery-frontend: Running\nserver: Running\nstore-gateway: Running\nstore-gateway-ring: Running\n", body)

	status, body = get("/ready")
	require.Equal(t, 200, status)
	require.Equal(t, "ready\n", body)

	status, body = get("/metrics")
	require.Equal(t, 200, status)
	require.Contains(t, body, "neocortex_ingester_memory_series 0")
}

func TestRingPage(t *testing.T) {
	a := startApp(t, testConfig(t))
	id := a.Cfg.Ingester.Ring.InstanceID

	req, _ := http.NewRequest(http.MethodGet, "http://"+a.Server.HTTPAddr()+"/ingester/ring", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := testHTTP.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, string(b), `"id":"`+id+`"`)
	require.Contains(t, string(b), `"state":"ACTIVE"`)

	resp, err = testHTTP.Get("http://" + a.Server.HTTPAddr() + "/ingester/ring")
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	require.Contains(t, string(b), id)
	require.Contains(t, string(b), "Forget")

	// Forget removes the instance (here our own, which re-registers on its
	// next heartbeat, as a live ingester should).
	resp, err = testHTTP.PostForm("http://"+a.Server.HTTPAddr()+"/ingester/ring", map[string][]string{"forget": {id}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
}

// TestConfigWarnings: settings under which recent data may be read from
// nowhere are reported, in a process that runs the ingester and the
// querier; the defaults are not.
func TestConfigWarnings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *app.Config)
		want   []string
	}{
		{name: "defaults", change: func(*app.Config) {}},
		{name: "ingesters always asked", change: func(c *app.Config) { c.Querier.QueryIngestersWithin, c.Querier.QueryStoreAfter = 0, 0 }},
		{name: "retention below query_ingesters_within", change: func(c *app.Config) { c.Ingester.Retention = 4 * time.Hour }, want: []string{
			"ingester.retention_period (4h0m0s) is less than querier.query_ingesters_within (5h0m0s): queries ask the ingesters for blocks they have deleted",
		}},
		{name: "query_ingesters_within too short", change: func(c *app.Config) {
			c.Querier.QueryIngestersWithin, c.Querier.QueryStoreAfter = 3*time.Hour, time.Hour
		}, want: []string{
			"querier.query_ingesters_within (3h0m0s) is less than the 3h18m0s a sample may take to be read from the bucket (1.5 × ingester.block_ranges_period, then the ingester's, compactor's, store-gateways' and queriers' intervals): queries may miss recent samples",
		}},
		{name: "idle cut too late", change: func(c *app.Config) { c.Ingester.HeadCompactionIdleTimeout = 5 * time.Hour }, want: []string{
			"ingester.head_compaction_idle_timeout (5h0m0s), plus 18m0s until the bucket's blocks are read, is more than querier.query_ingesters_within (5h0m0s): queries may miss the last samples of a tenant that stopped writing",
		}},
		{name: "not both in this process", change: func(c *app.Config) { c.Target = []string{"querier"}; c.Ingester.Retention = time.Hour }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := app.DefaultConfig()
			require.NoError(t, err)
			tc.change(c)
			require.Equal(t, tc.want, c.Warnings())
		})
	}
}
