package limits

import (
	"flag"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// defaultLimits returns the limits as registered by RegisterFlags.
func defaultLimits(t *testing.T) Limits {
	t.Helper()
	var l Limits
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	l.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	return l
}

func TestRegisterFlagsDefaults(t *testing.T) {
	// The documented Cortex defaults.
	require.Equal(t, Limits{
		IngestionRate:          25000,
		IngestionBurstSize:     50000,
		MaxLabelNameLength:     1024,
		MaxLabelValueLength:    2048,
		MaxLabelNamesPerSeries: 30,
		CreationGracePeriod:    10 * time.Minute,
		MaxMetadataLength:      1024,
		MaxExemplars:           100000,
		MaxSeriesPerUser:       5000000,
		MaxSeriesPerMetric:     50000,
		OutOfOrderTimeWindow:   0,
	}, defaultLimits(t))
}

func TestRegisterFlagsParse(t *testing.T) {
	var l Limits
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	l.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{
		"-distributor.ingestion-rate-limit=1.5",
		"-distributor.ingestion-burst-size=2",
		"-validation.max-length-label-name=3",
		"-validation.max-length-label-value=4",
		"-validation.max-label-names-per-series=5",
		"-validation.create-grace-period=6s",
		"-ingester.max-series-per-user=7",
		"-ingester.max-series-per-metric=8",
		"-ingester.out-of-order-time-window=9m",
		"-validation.max-metadata-length=10",
		"-ingester.max-exemplars=15",
		"-querier.max-query-length=11h",
		"-querier.max-query-lookback=12h",
		"-querier.max-fetched-series-per-query=13",
		"-querier.max-fetched-chunk-bytes-per-query=14",
	}))
	require.Equal(t, Limits{
		IngestionRate:          1.5,
		IngestionBurstSize:     2,
		MaxLabelNameLength:     3,
		MaxLabelValueLength:    4,
		MaxLabelNamesPerSeries: 5,
		CreationGracePeriod:    6 * time.Second,
		MaxMetadataLength:      10,
		MaxExemplars:           15,
		MaxSeriesPerUser:       7,
		MaxSeriesPerMetric:     8,
		OutOfOrderTimeWindow:   9 * time.Minute,

		MaxQueryLength:               11 * time.Hour,
		MaxQueryLookback:             12 * time.Hour,
		MaxFetchedSeriesPerQuery:     13,
		MaxFetchedChunkBytesPerQuery: 14,
	}, l)
}

func TestLimitsValidate(t *testing.T) {
	defaults := defaultLimits(t)
	for _, tc := range []struct {
		name    string
		modify  func(l *Limits)
		wantErr string // "" means valid
	}{
		{name: "defaults", modify: func(*Limits) {}},
		{name: "zero value", modify: func(l *Limits) { *l = Limits{} }},
		{name: "unlimited rate without burst", modify: func(l *Limits) { l.IngestionRate, l.IngestionBurstSize = 0, 0 }},
		{name: "ooo window set", modify: func(l *Limits) { l.OutOfOrderTimeWindow = time.Hour }},
		{
			name:    "negative rate",
			modify:  func(l *Limits) { l.IngestionRate = -1 },
			wantErr: "ingestion_rate must be a non-negative number",
		},
		{
			name:    "rate without burst",
			modify:  func(l *Limits) { l.IngestionBurstSize = 0 },
			wantErr: "ingestion_burst_size must be positive when ingestion_rate is set",
		},
		{
			name:    "rate with negative burst",
			modify:  func(l *Limits) { l.IngestionBurstSize = -1 },
			wantErr: "ingestion_burst_size must be positive when ingestion_rate is set",
		},
		{
			name:    "negative label name length",
			modify:  func(l *Limits) { l.MaxLabelNameLength = -1 },
			wantErr: "label limits must not be negative",
		},
		{
			name:    "negative label value length",
			modify:  func(l *Limits) { l.MaxLabelValueLength = -1 },
			wantErr: "label limits must not be negative",
		},
		{
			name:    "negative label names per series",
			modify:  func(l *Limits) { l.MaxLabelNamesPerSeries = -1 },
			wantErr: "label limits must not be negative",
		},
		{
			name:    "negative creation grace period",
			modify:  func(l *Limits) { l.CreationGracePeriod = -time.Second },
			wantErr: "creation_grace_period and out_of_order_time_window must not be negative",
		},
		{
			name:    "negative out-of-order window",
			modify:  func(l *Limits) { l.OutOfOrderTimeWindow = -time.Second },
			wantErr: "creation_grace_period and out_of_order_time_window must not be negative",
		},
		{
			name:    "negative series per user",
			modify:  func(l *Limits) { l.MaxSeriesPerUser = -1 },
			wantErr: "series limits must not be negative",
		},
		{
			name:    "negative series per metric",
			modify:  func(l *Limits) { l.MaxSeriesPerMetric = -1 },
			wantErr: "series limits must not be negative",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := defaults
			tc.modify(&l)
			err := l.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.wantErr)
		})
	}
}

func TestLoader(t *testing.T) {
	defaults := defaultLimits(t)
	with := func(modify func(l *Limits)) *Limits {
		l := defaults
		modify(&l)
		return &l
	}

	for _, tc := range []struct {
		name        string
		yaml        string
		want        map[string]*Limits
		wantErr     []string // substrings of the error; nil means no error
		wantErrText string   // the exact error, when set
	}{
		{
			name: "empty file",
			yaml: "",
			want: map[string]*Limits{},
		},
		{
			name: "only comments",
			yaml: "# no overrides yet\n",
			want: map[string]*Limits{},
		},
		{
			name: "empty overrides",
			yaml: "overrides:\n",
			want: map[string]*Limits{},
		},
		{
			name: "empty overrides map",
			yaml: "overrides: {}\n",
			want: map[string]*Limits{},
		},
		{
			name: "one field for one tenant keeps the other defaults",
			yaml: "overrides:\n  a:\n    ingestion_rate: 100000\n",
			want: map[string]*Limits{
				"a": with(func(l *Limits) { l.IngestionRate = 100000 }),
			},
		},
		{
			name: "tenant without fields gets the defaults",
			yaml: "overrides:\n  a: {}\n",
			want: map[string]*Limits{"a": with(func(*Limits) {})},
		},
		{
			name: "several tenants and fields",
			yaml: `
overrides:
  a:
    creation_grace_period: 1h
    max_label_names_per_series: 40
  b:
    ingestion_rate: 0
    out_of_order_time_window: 30m
    max_series_per_user: 0
`,
			want: map[string]*Limits{
				"a": with(func(l *Limits) {
					l.CreationGracePeriod = time.Hour
					l.MaxLabelNamesPerSeries = 40
				}),
				"b": with(func(l *Limits) {
					l.IngestionRate = 0
					l.OutOfOrderTimeWindow = 30 * time.Minute
					l.MaxSeriesPerUser = 0
				}),
			},
		},
		{
			name:    "unknown top-level field",
			yaml:    "overides:\n  a:\n    ingestion_rate: 1\n",
			wantErr: []string{"decode runtime config", "overides"},
		},
		{
			name:    "unknown field of a tenant",
			yaml:    "overrides:\n  a:\n    ingestion_rat: 1\n",
			wantErr: []string{"tenant \"a\"", "ingestion_rat"},
		},
		{
			name:        "negative rate",
			yaml:        "overrides:\n  a:\n    ingestion_rate: -1\n",
			wantErrText: `overrides of tenant "a": ingestion_rate must be a non-negative number`,
		},
		{
			name:        "rate enabled without burst",
			yaml:        "overrides:\n  tenant-b:\n    ingestion_burst_size: 0\n",
			wantErrText: `overrides of tenant "tenant-b": ingestion_burst_size must be positive when ingestion_rate is set`,
		},
		{
			name:    "wrong type",
			yaml:    "overrides:\n  a:\n    max_series_per_user: lots\n",
			wantErr: []string{`decode overrides of tenant "a"`, "lots"},
		},
		{
			name:    "bad duration",
			yaml:    "overrides:\n  a:\n    creation_grace_period: soon\n",
			wantErr: []string{`decode overrides of tenant "a"`, "soon"},
		},
		{
			name:    "malformed yaml",
			yaml:    "overrides: [\n",
			wantErr: []string{"decode runtime config"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := defaults
			got, err := Loader(defaults)(strings.NewReader(tc.yaml))
			require.Equal(t, before, defaults, "loader modified the defaults")

			if tc.wantErrText != "" || tc.wantErr != nil {
				require.Error(t, err)
				require.Nil(t, got)
				if tc.wantErrText != "" {
					require.EqualError(t, err, tc.wantErrText)
				}
				for _, s := range tc.wantErr {
					require.ErrorContains(t, err, s)
				}
				return
			}
			require.NoError(t, err)
			require.IsType(t, &RuntimeConfig{}, got)
			require.Equal(t, &RuntimeConfig{Overrides: tc.want}, got)
		})
	}
}

func TestLoaderTenantsDoNotShareLimits(t *testing.T) {
	got, err := Loader(defaultLimits(t))(strings.NewReader("overrides:\n  a: {}\n  b: {}\n"))
	require.NoError(t, err)
	rc := got.(*RuntimeConfig)
	require.NotSame(t, rc.Overrides["a"], rc.Overrides["b"])
	rc.Overrides["a"].IngestionRate = 1
	require.Equal(t, float64(25000), rc.Overrides["b"].IngestionRate)
}

func TestOverrides(t *testing.T) {
	defaults := defaultLimits(t)
	tenantA := defaults
	tenantA.IngestionRate = 100
	tenantA.IngestionBurstSize = 200
	unlimitedTenant := defaults
	unlimitedTenant.IngestionRate = 0
	unlimitedTenant.IngestionBurstSize = 0
	rc := &RuntimeConfig{Overrides: map[string]*Limits{"a": &tenantA, "unlimited": &unlimitedTenant}}

	unlimitedDefaults := defaults
	unlimitedDefaults.IngestionRate = 0

	for _, tc := range []struct {
		name      string
		defaults  Limits
		source    TenantLimitsSource
		tenant    string
		want      *Limits
		wantSame  *Limits // when set, For must return exactly this pointer
		wantLimit float64
		wantBurst int
	}{
		{
			name:      "overridden tenant",
			defaults:  defaults,
			source:    func() *RuntimeConfig { return rc },
			tenant:    "a",
			want:      &tenantA,
			wantSame:  &tenantA,
			wantLimit: 100,
			wantBurst: 200,
		},
		{
			name:      "tenant without overrides",
			defaults:  defaults,
			source:    func() *RuntimeConfig { return rc },
			tenant:    "b",
			want:      &defaults,
			wantLimit: 25000,
			wantBurst: 50000,
		},
		{
			name:      "empty tenant ID",
			defaults:  defaults,
			source:    func() *RuntimeConfig { return rc },
			tenant:    "",
			want:      &defaults,
			wantLimit: 25000,
			wantBurst: 50000,
		},
		{
			name:      "nil source",
			defaults:  defaults,
			source:    nil,
			tenant:    "a",
			want:      &defaults,
			wantLimit: 25000,
			wantBurst: 50000,
		},
		{
			name:      "source without a loaded config",
			defaults:  defaults,
			source:    func() *RuntimeConfig { return nil },
			tenant:    "a",
			want:      &defaults,
			wantLimit: 25000,
			wantBurst: 50000,
		},
		{
			name:      "config without overrides",
			defaults:  defaults,
			source:    func() *RuntimeConfig { return &RuntimeConfig{} },
			tenant:    "a",
			want:      &defaults,
			wantLimit: 25000,
			wantBurst: 50000,
		},
		{
			name:      "overridden to unlimited rate",
			defaults:  defaults,
			source:    func() *RuntimeConfig { return rc },
			tenant:    "unlimited",
			want:      &unlimitedTenant,
			wantSame:  &unlimitedTenant,
			wantLimit: math.Inf(1),
			wantBurst: 0,
		},
		{
			name:      "unlimited rate by default",
			defaults:  unlimitedDefaults,
			source:    nil,
			tenant:    "b",
			want:      &unlimitedDefaults,
			wantLimit: math.Inf(1),
			wantBurst: 50000,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOverrides(tc.defaults, tc.source)
			got := o.For(tc.tenant)
			require.Equal(t, tc.want, got)
			if tc.wantSame != nil {
				require.Same(t, tc.wantSame, got)
			}
			require.Equal(t, tc.wantLimit, o.Limit(tc.tenant))
			require.Equal(t, tc.wantBurst, o.Burst(tc.tenant))
		})
	}
}

func TestOverridesFollowSource(t *testing.T) {
	defaults := defaultLimits(t)
	var current *RuntimeConfig
	o := NewOverrides(defaults, func() *RuntimeConfig { return current })
	require.Equal(t, float64(25000), o.Limit("a"))

	load := func(yaml string) {
		t.Helper()
		got, err := Loader(defaults)(strings.NewReader(yaml))
		require.NoError(t, err)
		current = got.(*RuntimeConfig)
	}
	load("overrides:\n  a:\n    ingestion_rate: 10\n    ingestion_burst_size: 20\n")
	require.Equal(t, float64(10), o.Limit("a"))
	require.Equal(t, 20, o.Burst("a"))
	require.Equal(t, float64(25000), o.Limit("b"))

	load("")
	require.Equal(t, float64(25000), o.Limit("a"))
	require.Equal(t, 50000, o.Burst("a"))
}

func TestNewOverridesCopiesDefaults(t *testing.T) {
	defaults := defaultLimits(t)
	o := NewOverrides(defaults, nil)
	defaults.IngestionRate = 1
	require.Equal(t, float64(25000), o.Limit("a"))
}
