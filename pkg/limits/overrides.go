package limits

import (
	"bytes"
	"fmt"
	"io"
	"math"

	"go.yaml.in/yaml/v3"
)

// RuntimeConfig is the content of the runtime-config file: per-tenant
// overrides of the default limits. The file is re-read while running.
//
//	overrides:
//	  tenant-a:
//	    ingestion_rate: 100000
type RuntimeConfig struct {
	Overrides map[string]*Limits `yaml:"overrides"`
}

// Loader returns a runtime-config loader in which every tenant's limits start
// from defaults, so an override file need only name the limits it changes.
func Loader(defaults Limits) func(r io.Reader) (any, error) {
	return func(r io.Reader) (any, error) {
		var raw struct {
			Overrides map[string]yaml.Node `yaml:"overrides"`
		}
		dec := yaml.NewDecoder(r)
		dec.KnownFields(true)
		if err := dec.Decode(&raw); err != nil && err != io.EOF {
			return nil, fmt.Errorf("decode runtime config: %w", err)
		}
		cfg := &RuntimeConfig{Overrides: make(map[string]*Limits, len(raw.Overrides))}
		for tenant, node := range raw.Overrides {
			l := defaults
			if err := decodeStrict(&node, &l); err != nil {
				return nil, fmt.Errorf("decode overrides of tenant %q: %w", tenant, err)
			}
			if err := l.Validate(); err != nil {
				return nil, fmt.Errorf("overrides of tenant %q: %w", tenant, err)
			}
			cfg.Overrides[tenant] = &l
		}
		return cfg, nil
	}
}

// TenantLimitsSource returns the current runtime config, or nil when none is
// loaded. It must be safe to call from many goroutines.
type TenantLimitsSource func() *RuntimeConfig

// Overrides resolves the limits of a tenant. It is safe for concurrent use.
type Overrides struct {
	defaults *Limits
	source   TenantLimitsSource
}

// NewOverrides returns Overrides that answer defaults for every tenant the
// source (which may be nil) does not override.
func NewOverrides(defaults Limits, source TenantLimitsSource) *Overrides {
	return &Overrides{defaults: &defaults, source: source}
}

// For returns the limits of tenant. The result must not be modified.
func (o *Overrides) For(tenant string) *Limits {
	if o.source != nil {
		if rc := o.source(); rc != nil {
			if l, ok := rc.Overrides[tenant]; ok {
				return l
			}
		}
	}
	return o.defaults
}

// IngestionRate and IngestionBurstSize make Overrides a dskit
// limiter.RateLimiterStrategy.

// Limit is the tenant's ingestion rate in samples per second; +Inf when the
// rate is unlimited (0 in the config).
func (o *Overrides) Limit(tenant string) float64 {
	if r := o.For(tenant).IngestionRate; r > 0 {
		return r
	}
	return math.Inf(1)
}

// Burst is the tenant's ingestion burst size in samples.
func (o *Overrides) Burst(tenant string) int { return o.For(tenant).IngestionBurstSize }

// decodeStrict decodes node into v, refusing fields v does not have
// (yaml.Node.Decode would silently ignore a misspelt limit).
func decodeStrict(node *yaml.Node, v any) error {
	b, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && err != io.EOF {
		return err
	}
	return nil
}
