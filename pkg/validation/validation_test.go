package validation

import (
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/limits"
)

// defaultLimits returns the limits as registered by RegisterFlags, i.e. what a
// tenant without overrides gets.
func defaultLimits(t *testing.T) limits.Limits {
	t.Helper()
	var l limits.Limits
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	l.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	return l
}

// lbls builds labels from name/value pairs, in the order given.
func lbls(nv ...string) []prompb.Label {
	if len(nv)%2 != 0 {
		panic("lbls: odd number of arguments")
	}
	ls := make([]prompb.Label, 0, len(nv)/2)
	for i := 0; i < len(nv); i += 2 {
		ls = append(ls, prompb.Label{Name: nv[i], Value: nv[i+1]})
	}
	return ls
}

// nLabels returns __name__="up" followed by n-1 sorted labels l000, l001, ….
func nLabels(n int) []prompb.Label {
	ls := lbls("__name__", "up")
	for i := 1; i < n; i++ {
		ls = append(ls, prompb.Label{Name: fmt.Sprintf("l%03d", i), Value: "v"})
	}
	return ls
}

func TestLabels(t *testing.T) {
	defaults := defaultLimits(t)
	unlimited := defaults
	unlimited.MaxLabelNameLength = 0
	unlimited.MaxLabelValueLength = 0
	unlimited.MaxLabelNamesPerSeries = 0

	name1024 := strings.Repeat("a", 1024)
	name1025 := strings.Repeat("a", 1025)
	value2048 := strings.Repeat("v", 2048)
	value2049 := strings.Repeat("v", 2049)

	for _, tc := range []struct {
		name       string
		limits     limits.Limits // defaults when zero
		labels     []prompb.Label
		wantReason string // "" means valid
		wantDetail string
		wantSeries string // SeriesString(labels) when empty
	}{
		{
			name:   "valid",
			labels: lbls("__name__", "up", "instance", "host:9090", "job", "node"),
		},
		{
			name:   "valid metric name with colons and underscores",
			labels: lbls("__name__", "job:up:sum_rate5m", "a", "1"),
		},
		{
			name:   "valid reserved-looking label name",
			labels: lbls("__name__", "up", "__tenant", "1"),
		},
		{
			name:   "valid empty label value",
			labels: lbls("__name__", "up", "a", ""),
		},
		{
			name:   "valid UTF-8 label value",
			labels: lbls("__name__", "up", "city", "Zürich ☃"),
		},
		{
			name:       "missing metric name",
			labels:     lbls("a", "1", "b", "2"),
			wantReason: ReasonMissingMetricName,
			wantDetail: "series has no metric name (label __name__)",
			wantSeries: `{a="1", b="2"}`,
		},
		{
			name:       "no labels at all",
			labels:     nil,
			wantReason: ReasonMissingMetricName,
			wantDetail: "series has no metric name (label __name__)",
			wantSeries: `{}`,
		},
		{
			name:       "metric name starts with a digit",
			labels:     lbls("__name__", "1abc", "a", "1"),
			wantReason: ReasonInvalidMetricName,
			wantDetail: `invalid metric name "1abc"`,
			wantSeries: `1abc{a="1"}`,
		},
		{
			name:       "metric name with a dash",
			labels:     lbls("__name__", "a-b"),
			wantReason: ReasonInvalidMetricName,
			wantDetail: `invalid metric name "a-b"`,
			wantSeries: `a-b{}`,
		},
		{
			name:       "empty metric name",
			labels:     lbls("__name__", "", "a", "1"),
			wantReason: ReasonInvalidMetricName,
			wantDetail: `invalid metric name ""`,
			wantSeries: `{a="1"}`,
		},
		{
			name:       "metric name with UTF-8",
			labels:     lbls("__name__", "température"),
			wantReason: ReasonInvalidMetricName,
			wantDetail: `invalid metric name "température"`,
			wantSeries: `température{}`,
		},
		{
			name:       "label name starts with a digit",
			labels:     lbls("__name__", "up", "1a", "x"),
			wantReason: ReasonInvalidLabelName,
			wantDetail: `invalid label name "1a"`,
			wantSeries: `up{1a="x"}`,
		},
		{
			name:       "label name with a dash",
			labels:     lbls("__name__", "up", "a-b", "x"),
			wantReason: ReasonInvalidLabelName,
			wantDetail: `invalid label name "a-b"`,
			wantSeries: `up{a-b="x"}`,
		},
		{
			name:       "label name with a colon",
			labels:     lbls("__name__", "up", "a:b", "x"),
			wantReason: ReasonInvalidLabelName,
			wantDetail: `invalid label name "a:b"`,
			wantSeries: `up{a:b="x"}`,
		},
		{
			name:       "empty label name",
			labels:     lbls("", "x", "__name__", "up"),
			wantReason: ReasonInvalidLabelName,
			wantDetail: `invalid label name ""`,
			wantSeries: `up{="x"}`,
		},
		{
			name:       "label value not UTF-8",
			labels:     lbls("__name__", "up", "a", "ok", "b", "bad\xff"),
			wantReason: ReasonInvalidLabelValue,
			wantDetail: `value of label "b" is not valid UTF-8`,
			wantSeries: `up{a="ok", b="bad\xff"}`,
		},
		{
			name:       "metric name not UTF-8",
			labels:     lbls("__name__", "up\xff"),
			wantReason: ReasonInvalidMetricName,
			wantDetail: `invalid metric name "up\xff"`,
		},
		{
			name:   "label name of exactly the limit",
			labels: lbls("__name__", "up", name1024, "x"),
		},
		{
			name:       "label name one byte over the limit",
			labels:     lbls("__name__", "up", name1025, "x"),
			wantReason: ReasonLabelNameTooLong,
			wantDetail: "label name of 1025 bytes is longer than the limit of 1024 bytes",
		},
		{
			name:   "label value of exactly the limit",
			labels: lbls("__name__", "up", "a", value2048),
		},
		{
			name:       "label value one byte over the limit",
			labels:     lbls("__name__", "up", "a", value2049),
			wantReason: ReasonLabelValueTooLong,
			wantDetail: `value of label "a" is 2049 bytes, longer than the limit of 2048 bytes`,
		},
		{
			name:       "label value over the limit counts bytes, not runes",
			labels:     lbls("__name__", "up", "a", strings.Repeat("é", 1025)), // 2050 bytes
			wantReason: ReasonLabelValueTooLong,
			wantDetail: `value of label "a" is 2050 bytes, longer than the limit of 2048 bytes`,
		},
		{
			name:       "metric name over the value limit",
			labels:     lbls("__name__", value2049),
			wantReason: ReasonLabelValueTooLong,
			wantDetail: `value of label "__name__" is 2049 bytes, longer than the limit of 2048 bytes`,
		},
		{
			name:   "exactly the maximum number of labels including __name__",
			labels: nLabels(30),
		},
		{
			name:       "one label over the maximum",
			labels:     nLabels(31),
			wantReason: ReasonTooManyLabels,
			wantDetail: "series has 31 label names, more than the limit of 30",
		},
		{
			name:       "too many labels is reported before other problems",
			labels:     append(nLabels(31)[1:], prompb.Label{Name: "1bad", Value: "\xff"}),
			wantReason: ReasonTooManyLabels,
			wantDetail: "series has 31 label names, more than the limit of 30",
		},
		{
			name:       "duplicate label name",
			labels:     lbls("__name__", "up", "a", "1", "a", "2"),
			wantReason: ReasonDuplicateLabelName,
			wantDetail: `duplicate label name "a"`,
			wantSeries: `up{a="1", a="2"}`,
		},
		{
			name:       "duplicate metric name",
			labels:     lbls("__name__", "up", "__name__", "down"),
			wantReason: ReasonDuplicateLabelName,
			wantDetail: `duplicate label name "__name__"`,
			wantSeries: `down{}`,
		},
		{
			name:       "labels not sorted",
			labels:     lbls("__name__", "up", "b", "1", "a", "2"),
			wantReason: ReasonLabelsNotSorted,
			wantDetail: `labels are not sorted by name: "a" comes after "b"`,
			wantSeries: `up{b="1", a="2"}`,
		},
		{
			name:       "metric name not first",
			labels:     lbls("a", "1", "__name__", "up"),
			wantReason: ReasonLabelsNotSorted,
			wantDetail: `labels are not sorted by name: "__name__" comes after "a"`,
			wantSeries: `up{a="1"}`,
		},
		{
			name:       "sorting is bytewise: upper case sorts before lower case",
			labels:     lbls("__name__", "up", "a", "1", "B", "2"),
			wantReason: ReasonLabelsNotSorted,
			wantDetail: `labels are not sorted by name: "B" comes after "a"`,
			wantSeries: `up{a="1", B="2"}`,
		},
		{
			name:   "zero limits disable name length, value length and label count",
			limits: unlimited,
			labels: append(nLabels(200), []prompb.Label{
				{Name: "m" + strings.Repeat("n", 5000), Value: strings.Repeat("v", 100000)},
			}...),
		},
		{
			name:       "zero limits still check names",
			limits:     unlimited,
			labels:     lbls("__name__", "up", "a-b", "1"),
			wantReason: ReasonInvalidLabelName,
			wantDetail: `invalid label name "a-b"`,
			wantSeries: `up{a-b="1"}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.limits
			if l == (limits.Limits{}) {
				l = defaults
			}
			err := Labels(&l, tc.labels)
			if tc.wantReason == "" {
				require.Nil(t, err)
				return
			}
			require.NotNil(t, err)
			requireError(t, err, tc.labels, tc.wantReason, tc.wantDetail, tc.wantSeries)
		})
	}
}

// requireError asserts every field of err and that its message names the
// reason, the detail and the series.
func requireError(t *testing.T, err *Error, ls []prompb.Label, reason, detail, series string) {
	t.Helper()
	if series == "" {
		series = SeriesString(ls)
	}
	require.Equal(t, &Error{Reason: reason, Detail: detail, Series: series}, err)
	msg := err.Error()
	require.Contains(t, msg, detail)
	require.Contains(t, msg, "("+reason+")")
	require.True(t, strings.HasSuffix(msg, "for series "+series), "message %q does not end with the series", msg)
}

func TestTimestamp(t *testing.T) {
	defaults := defaultLimits(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	nowMs := now.UnixMilli()
	grace := (10 * time.Minute).Milliseconds()
	ls := lbls("__name__", "up", "job", "node")

	withGrace := func(d time.Duration) limits.Limits {
		l := defaults
		l.CreationGracePeriod = d
		return l
	}

	for _, tc := range []struct {
		name       string
		limits     limits.Limits
		now        time.Time // the now above when zero
		ts         int64
		wantDetail string // "" means accepted
	}{
		{name: "now", limits: defaults, ts: nowMs},
		{name: "in the past", limits: defaults, ts: nowMs - 24*time.Hour.Milliseconds()},
		{name: "zero timestamp", limits: defaults, ts: 0},
		{name: "negative timestamp", limits: defaults, ts: -1},
		{name: "exactly the grace period ahead", limits: defaults, ts: nowMs + grace},
		{
			name:       "one millisecond beyond the grace period",
			limits:     defaults,
			ts:         nowMs + grace + 1,
			wantDetail: "sample timestamp 2026-01-02T03:14:05.001Z is more than 10m0s in the future",
		},
		{
			name:       "far in the future",
			limits:     defaults,
			ts:         time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(),
			wantDetail: "sample timestamp 2100-01-01T00:00:00Z is more than 10m0s in the future",
		},
		{
			name:   "sub-millisecond now: exactly the grace period ahead in milliseconds",
			limits: defaults,
			now:    now.Add(999 * time.Microsecond),
			ts:     nowMs + grace,
		},
		{
			name:       "sub-millisecond now: one millisecond beyond",
			limits:     defaults,
			now:        now.Add(999 * time.Microsecond),
			ts:         nowMs + grace + 1,
			wantDetail: "sample timestamp 2026-01-02T03:14:05.001Z is more than 10m0s in the future",
		},
		{
			name:   "custom grace period",
			limits: withGrace(time.Hour),
			ts:     nowMs + time.Hour.Milliseconds(),
		},
		{
			name:       "beyond a custom grace period",
			limits:     withGrace(time.Hour),
			ts:         nowMs + time.Hour.Milliseconds() + 1,
			wantDetail: "sample timestamp 2026-01-02T04:04:05.001Z is more than 1h0m0s in the future",
		},
		{
			name:   "zero grace period disables the check",
			limits: withGrace(0),
			ts:     time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(),
		},
		{
			name:   "negative grace period disables the check",
			limits: withGrace(-time.Minute),
			ts:     nowMs + grace + 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.now
			if n.IsZero() {
				n = now
			}
			err := Timestamp(&tc.limits, n, tc.ts, ls)
			if tc.wantDetail == "" {
				require.Nil(t, err)
				return
			}
			require.NotNil(t, err)
			requireError(t, err, ls, ReasonTooFarInFuture, tc.wantDetail, `up{job="node"}`)
		})
	}
}

func TestSeries(t *testing.T) {
	defaults := defaultLimits(t)
	noGrace := defaults
	noGrace.CreationGracePeriod = 0

	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	nowMs := now.UnixMilli()
	ok := nowMs + (10 * time.Minute).Milliseconds()
	future := ok + 1
	futureDetail := "sample timestamp 2026-01-02T03:14:05.001Z is more than 10m0s in the future"
	good := lbls("__name__", "up", "job", "node")

	samples := func(ts ...int64) []prompb.Sample {
		var ss []prompb.Sample
		for _, t := range ts {
			ss = append(ss, prompb.Sample{Timestamp: t, Value: 1})
		}
		return ss
	}
	histograms := func(ts ...int64) []prompb.Histogram {
		var hs []prompb.Histogram
		for _, t := range ts {
			hs = append(hs, prompb.Histogram{Timestamp: t})
		}
		return hs
	}

	for _, tc := range []struct {
		name       string
		limits     limits.Limits
		series     prompb.TimeSeries
		wantReason string // "" means valid
		wantDetail string
		wantSeries string
	}{
		{
			name:   "valid samples and histograms",
			limits: defaults,
			series: prompb.TimeSeries{Labels: good, Samples: samples(nowMs-1000, nowMs, ok), Histograms: histograms(nowMs, ok)},
		},
		{
			name:   "valid without samples",
			limits: defaults,
			series: prompb.TimeSeries{Labels: good},
		},
		{
			name:       "invalid labels",
			limits:     defaults,
			series:     prompb.TimeSeries{Labels: lbls("job", "node"), Samples: samples(nowMs)},
			wantReason: ReasonMissingMetricName,
			wantDetail: "series has no metric name (label __name__)",
			wantSeries: `{job="node"}`,
		},
		{
			name:       "labels are checked before timestamps",
			limits:     defaults,
			series:     prompb.TimeSeries{Labels: lbls("__name__", "up", "b", "1", "a", "1"), Samples: samples(future), Histograms: histograms(future)},
			wantReason: ReasonLabelsNotSorted,
			wantDetail: `labels are not sorted by name: "a" comes after "b"`,
			wantSeries: `up{b="1", a="1"}`,
		},
		{
			name:       "future sample",
			limits:     defaults,
			series:     prompb.TimeSeries{Labels: good, Samples: samples(nowMs, future)},
			wantReason: ReasonTooFarInFuture,
			wantDetail: futureDetail,
			wantSeries: `up{job="node"}`,
		},
		{
			name:       "future histogram with valid samples",
			limits:     defaults,
			series:     prompb.TimeSeries{Labels: good, Samples: samples(nowMs), Histograms: histograms(nowMs, future)},
			wantReason: ReasonTooFarInFuture,
			wantDetail: futureDetail,
			wantSeries: `up{job="node"}`,
		},
		{
			name:       "future histogram without samples",
			limits:     defaults,
			series:     prompb.TimeSeries{Labels: good, Histograms: histograms(future)},
			wantReason: ReasonTooFarInFuture,
			wantDetail: futureDetail,
			wantSeries: `up{job="node"}`,
		},
		{
			name:   "zero grace period accepts future samples and histograms",
			limits: noGrace,
			series: prompb.TimeSeries{Labels: good, Samples: samples(future), Histograms: histograms(future)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Series(&tc.limits, now, &tc.series)
			if tc.wantReason == "" {
				require.Nil(t, err)
				return
			}
			require.NotNil(t, err)
			requireError(t, err, tc.series.Labels, tc.wantReason, tc.wantDetail, tc.wantSeries)
		})
	}
}

func TestSeriesString(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels []prompb.Label
		want   string
	}{
		{name: "name and labels", labels: lbls("__name__", "up", "a", "1", "b", "2"), want: `up{a="1", b="2"}`},
		{name: "name only", labels: lbls("__name__", "up"), want: `up{}`},
		{name: "labels only", labels: lbls("a", "1"), want: `{a="1"}`},
		{name: "no labels", labels: nil, want: `{}`},
		{name: "name not first", labels: lbls("a", "1", "__name__", "up", "b", "2"), want: `up{a="1", b="2"}`},
		{name: "label order kept", labels: lbls("__name__", "up", "b", "2", "a", "1"), want: `up{b="2", a="1"}`},
		{name: "empty value", labels: lbls("__name__", "up", "a", ""), want: `up{a=""}`},
		{name: "values quoted and escaped", labels: lbls("__name__", "up", "a", "x\"y\\z\n"), want: `up{a="x\"y\\z\n"}`},
		{name: "invalid UTF-8 escaped", labels: lbls("__name__", "up", "a", "\xff"), want: `up{a="\xff"}`},
		{name: "UTF-8 kept", labels: lbls("__name__", "up", "a", "é☃"), want: `up{a="é☃"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, SeriesString(tc.labels))
		})
	}
}

func TestSeriesStringShortensHugeSeries(t *testing.T) {
	const ellipsis = "…"
	manyLabels := nLabels(10000)
	for _, tc := range []struct {
		name       string
		labels     []prompb.Label
		wantPrefix string
	}{
		{
			name:       "huge value",
			labels:     lbls("__name__", "up", "a", strings.Repeat("x", 100000)),
			wantPrefix: `up{a="xxxxxxxx`,
		},
		{
			name:       "huge label name",
			labels:     lbls("__name__", "up", strings.Repeat("n", 100000), "1"),
			wantPrefix: `up{nnnnnnnn`,
		},
		{
			name:       "huge metric name",
			labels:     lbls("__name__", strings.Repeat("m", 100000), "a", "1"),
			wantPrefix: `mmmmmmmm`,
		},
		{
			name:       "many labels",
			labels:     manyLabels,
			wantPrefix: `up{l001="v", l002="v", `,
		},
		{
			name:       "huge label after short ones",
			labels:     lbls("__name__", "up", "a", "1", "b", strings.Repeat("x", 100000), "c", "3"),
			wantPrefix: `up{a="1", b="xxxx`,
		},
		{
			// 7 bytes of `up{ab="` then 2-byte runes: a cut at an even byte
			// offset falls in the middle of a rune.
			name:       "huge multi-byte value",
			labels:     lbls("__name__", "up", "ab", strings.Repeat("é", 100000)),
			wantPrefix: `up{ab="ééé`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := SeriesString(tc.labels)
			require.LessOrEqual(t, len(s), maxSeriesStringLen+len(ellipsis))
			require.True(t, strings.HasSuffix(s, ellipsis), "%q does not end with %q", s, ellipsis)
			require.True(t, strings.HasPrefix(s, tc.wantPrefix), "%q does not start with %q", s, tc.wantPrefix)
			require.True(t, utf8.ValidString(s), "shortened series string is not valid UTF-8: %q", s[len(s)-8:])
		})
	}

	t.Run("just under the bound is not shortened", func(t *testing.T) {
		// up{a="…"} is 8 bytes around the value.
		ls := lbls("__name__", "up", "a", strings.Repeat("x", maxSeriesStringLen-8))
		s := SeriesString(ls)
		require.Len(t, s, maxSeriesStringLen)
		require.True(t, strings.HasSuffix(s, `x"}`))
	})
	t.Run("one byte over the bound is shortened", func(t *testing.T) {
		// 513 bytes: the cut drops the closing brace.
		ls := lbls("__name__", "up", "a", strings.Repeat("x", maxSeriesStringLen-7))
		require.Equal(t, `up{a="`+strings.Repeat("x", maxSeriesStringLen-7)+`"`+ellipsis, SeriesString(ls))
	})

	t.Run("errors quote the shortened series", func(t *testing.T) {
		l := defaultLimits(t)
		ls := lbls("__name__", "up", "a", strings.Repeat("x", 100000))
		err := Labels(&l, ls)
		require.NotNil(t, err)
		require.Equal(t, ReasonLabelValueTooLong, err.Reason)
		require.Equal(t, SeriesString(ls), err.Series)
		require.Less(t, len(err.Error()), 1024)
	})
}
