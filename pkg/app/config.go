// Package app wires the components into one process: which services each
// -target runs, in what order, and the endpoints every process serves.
package app

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/runtimeconfig"
	"go.yaml.in/yaml/v3"

	"github.com/neocortex-metrics/neocortex/pkg/compactor"
	"github.com/neocortex-metrics/neocortex/pkg/distributor"
	"github.com/neocortex-metrics/neocortex/pkg/frontend"
	"github.com/neocortex-metrics/neocortex/pkg/ingester"
	"github.com/neocortex-metrics/neocortex/pkg/ingester/client"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/logging"
	"github.com/neocortex-metrics/neocortex/pkg/querier"
	"github.com/neocortex-metrics/neocortex/pkg/querier/worker"
	"github.com/neocortex-metrics/neocortex/pkg/scheduler"
	"github.com/neocortex-metrics/neocortex/pkg/server"
	"github.com/neocortex-metrics/neocortex/pkg/storage/bucket"
	"github.com/neocortex-metrics/neocortex/pkg/storegateway"
)

// Config is the whole configuration of a process: one YAML file whose every
// field also has a flag.
type Config struct {
	Target      flagext.StringSliceCSV `yaml:"target"`
	AuthEnabled bool                   `yaml:"auth_enabled"`

	Server         server.Config        `yaml:"server"`
	Log            logging.Config       `yaml:"log"`
	Distributor    distributor.Config   `yaml:"distributor"`
	Ingester       ingester.Config      `yaml:"ingester"`
	IngesterClient client.Config        `yaml:"ingester_client"`
	Querier        querier.Config       `yaml:"querier"`
	StoreGateway   storegateway.Config  `yaml:"store_gateway"`
	Compactor      compactor.Config     `yaml:"compactor"`
	Frontend       frontend.Config      `yaml:"frontend"`
	QueryScheduler scheduler.Config     `yaml:"query_scheduler"`
	FrontendWorker worker.Config        `yaml:"frontend_worker"`
	Storage        bucket.Config        `yaml:"storage"`
	Limits         limits.Limits        `yaml:"limits"`
	RuntimeConfig  runtimeconfig.Config `yaml:"runtime_config"`
	Memberlist     memberlist.KVConfig  `yaml:"memberlist"`
}

// RegisterFlags registers every flag and sets every default.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Target = []string{All}
	f.Var(&c.Target, "target", "Comma-separated components to run: "+strings.Join(targets(), ", ")+".")
	f.BoolVar(&c.AuthEnabled, "auth.enabled", true, "Require the X-Scope-OrgID header naming the tenant (401 without). When false every request belongs to tenant \"anonymous\".")
	c.Server.RegisterFlags(f)
	c.Log.RegisterFlags(f)
	c.Distributor.RegisterFlags(f)
	c.Ingester.RegisterFlags(f)
	c.IngesterClient.RegisterFlags(f)
	c.Querier.RegisterFlags(f)
	c.StoreGateway.RegisterFlags(f)
	c.Compactor.RegisterFlags(f)
	c.Frontend.RegisterFlags(f)
	c.QueryScheduler.RegisterFlags(f)
	c.FrontendWorker.RegisterFlags(f)
	c.Storage.RegisterFlags(f)
	c.Limits.RegisterFlags(f)
	c.RuntimeConfig.RegisterFlags(f)
	c.Memberlist.RegisterFlags(f)
}

// Validate checks the config of every component.
func (c *Config) Validate() error {
	if len(c.Target) == 0 {
		return errors.New("target must name at least one component")
	}
	for _, t := range c.Target {
		if !isTarget(t) {
			return fmt.Errorf("unknown target %q: use one or more of %s", t, strings.Join(targets(), ", "))
		}
	}
	for _, v := range []interface{ Validate() error }{
		&c.Server, &c.Log, &c.Distributor, &c.Ingester, &c.Querier, &c.StoreGateway, &c.Compactor, &c.Frontend, &c.QueryScheduler, &c.FrontendWorker, &c.Storage, &c.Limits,
	} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Warnings are what the config allows but probably does not mean, for the
// log at startup: settings under which recent data may be read from
// nowhere. They are checked when the process runs both the ingester and
// the querier, so that both sections are surely its own.
func (c *Config) Warnings() []string {
	within := c.Querier.QueryIngestersWithin
	if !c.runs(Ingester) || !c.runs(Querier) || within == 0 {
		return nil // or the ingesters are always asked
	}
	// From a block's cut to queriers reading it: shipped at the cut, in
	// the bucket index at the next compaction, loaded by the
	// store-gateways at their next sync, seen by the queriers once their
	// cached index expires.
	visible := c.Ingester.HeadCompactionInterval + c.Compactor.CompactionInterval + c.StoreGateway.SyncInterval + c.Querier.BucketIndexCacheTTL
	var out []string
	if c.Ingester.Retention < within {
		out = append(out, fmt.Sprintf("ingester.retention_period (%s) is less than querier.query_ingesters_within (%s): queries ask the ingesters for blocks they have deleted", c.Ingester.Retention, within))
	}
	if cut := c.Ingester.BlockRange*3/2 + visible; within < cut {
		out = append(out, fmt.Sprintf("querier.query_ingesters_within (%s) is less than the %s a sample may take to be read from the bucket (1.5 × ingester.block_ranges_period, then the ingester's, compactor's, store-gateways' and queriers' intervals): queries may miss recent samples", within, cut))
	}
	if idle := c.Ingester.HeadCompactionIdleTimeout; idle > 0 && idle+visible > within {
		out = append(out, fmt.Sprintf("ingester.head_compaction_idle_timeout (%s), plus %s until the bucket's blocks are read, is more than querier.query_ingesters_within (%s): queries may miss the last samples of a tenant that stopped writing", idle, visible, within))
	}
	return out
}

// runs reports whether the process runs the module, itself or as part of
// all.
func (c *Config) runs(module string) bool {
	for _, t := range c.Target {
		if t == module || (t == All && slices.Contains(allModules, module)) {
			return true
		}
	}
	return false
}

// DefaultConfig returns the config with every default and no file or flag.
func DefaultConfig() (*Config, error) {
	var c Config
	fs := flag.NewFlagSet("defaults", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		return nil, err
	}
	return &c, nil
}

// Load builds the config from defaults, then the YAML file named by
// -config.file (if any), then the command-line flags, which win.
func Load(args []string) (*Config, error) {
	var c Config
	fs := flag.NewFlagSet("neocortex", flag.ContinueOnError)
	configFile := fs.String("config.file", "", "YAML configuration file; flags given on the command line override it.")
	expandEnv := fs.Bool("config.expand-env", false, "Replace ${VAR} in the configuration file with environment variables.")
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *configFile != "" {
		b, err := os.ReadFile(*configFile)
		if err != nil {
			return nil, fmt.Errorf("read config file: %w", err)
		}
		if *expandEnv {
			b = []byte(os.ExpandEnv(string(b)))
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parse config file %s: %w", *configFile, err)
		}
		// Flags given on the command line override the file.
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	return &c, nil
}
