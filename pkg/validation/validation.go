// Package validation checks incoming series against a tenant's limits and
// names the discard reasons counted in neocortex_discarded_samples_total.
package validation

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/neocortex-metrics/neocortex/pkg/limits"
)

// Discard reasons, the values of the reason label of
// neocortex_discarded_samples_total.
const (
	ReasonMissingMetricName   = "missing_metric_name"
	ReasonInvalidMetricName   = "metric_name_invalid"
	ReasonInvalidLabelName    = "label_name_invalid"
	ReasonInvalidLabelValue   = "label_value_invalid"
	ReasonLabelNameTooLong    = "label_name_too_long"
	ReasonLabelValueTooLong   = "label_value_too_long"
	ReasonTooManyLabels       = "max_label_names_per_series"
	ReasonDuplicateLabelName  = "duplicate_label_names"
	ReasonLabelsNotSorted     = "labels_not_sorted"
	ReasonTooFarInFuture      = "too_far_in_future"
	ReasonRateLimited         = "rate_limited"
	ReasonPerUserSeriesLimit  = "per_user_series_limit"
	ReasonPerMetricLimit      = "per_metric_series_limit"
	ReasonOutOfOrder          = "sample_out_of_order"
	ReasonOutOfBounds         = "sample_out_of_bounds"
	ReasonDuplicateSample     = "new_value_for_timestamp"
	ReasonInvalidHistogram    = "invalid_native_histogram"
	ReasonMetadataMissingName = "metadata_missing_metric_name"
	ReasonMetadataTooLong     = "metadata_too_long"
)

// Error is the rejection of one series: why, and which series.
type Error struct {
	Reason string // one of the Reason constants
	Detail string // what exactly was wrong
	Series string // the series in PromQL notation, possibly shortened
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%s) for series %s", e.Detail, e.Reason, e.Series)
}

// maxSeriesStringLen bounds how much of a series an error message quotes, so
// that a series with huge labels cannot blow up a response or a log line.
const maxSeriesStringLen = 512

// SeriesString formats labels in PromQL notation, shortened to a readable length.
func SeriesString(ls []prompb.Label) string {
	var b strings.Builder
	name := ""
	for _, l := range ls {
		if l.Name == model.MetricNameLabel {
			name = l.Value
		}
	}
	b.WriteString(name)
	b.WriteByte('{')
	first := true
	for _, l := range ls {
		if l.Name == model.MetricNameLabel {
			continue
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
		if b.Len() > maxSeriesStringLen {
			break
		}
	}
	b.WriteByte('}')
	s := b.String()
	if len(s) > maxSeriesStringLen {
		cut := maxSeriesStringLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.ToValidUTF8(s[:cut], "\uFFFD") + "…"
	}
	return s
}

// Labels checks the labels of one series: a valid metric name, valid label
// names and values within the length limits, at most the allowed number of
// labels, sorted by name and without duplicates.
func Labels(l *limits.Limits, ls []prompb.Label) *Error {
	fail := func(reason, format string, args ...any) *Error {
		return &Error{Reason: reason, Detail: fmt.Sprintf(format, args...), Series: SeriesString(ls)}
	}
	if l.MaxLabelNamesPerSeries > 0 && len(ls) > l.MaxLabelNamesPerSeries {
		return fail(ReasonTooManyLabels, "series has %d label names, more than the limit of %d", len(ls), l.MaxLabelNamesPerSeries)
	}
	hasName := false
	for i, lb := range ls {
		if lb.Name == model.MetricNameLabel {
			hasName = true
			if !validMetricName(lb.Value) {
				return fail(ReasonInvalidMetricName, "invalid metric name %q", lb.Value)
			}
		} else if !validLabelName(lb.Name) {
			return fail(ReasonInvalidLabelName, "invalid label name %q", lb.Name)
		}
		if l.MaxLabelNameLength > 0 && len(lb.Name) > l.MaxLabelNameLength {
			return fail(ReasonLabelNameTooLong, "label name of %d bytes is longer than the limit of %d bytes", len(lb.Name), l.MaxLabelNameLength)
		}
		if l.MaxLabelValueLength > 0 && len(lb.Value) > l.MaxLabelValueLength {
			return fail(ReasonLabelValueTooLong, "value of label %q is %d bytes, longer than the limit of %d bytes", lb.Name, len(lb.Value), l.MaxLabelValueLength)
		}
		if !utf8.ValidString(lb.Value) {
			return fail(ReasonInvalidLabelValue, "value of label %q is not valid UTF-8", lb.Name)
		}
		if i > 0 {
			switch prev := ls[i-1].Name; strings.Compare(prev, lb.Name) {
			case 0:
				return fail(ReasonDuplicateLabelName, "duplicate label name %q", lb.Name)
			case 1:
				return fail(ReasonLabelsNotSorted, "labels are not sorted by name: %q comes after %q", lb.Name, prev)
			}
		}
	}
	if !hasName {
		return fail(ReasonMissingMetricName, "series has no metric name (label %s)", model.MetricNameLabel)
	}
	return nil
}

// Timestamp checks that a sample at tsMillis is not further in the future than
// the tenant's creation grace period allows.
func Timestamp(l *limits.Limits, now time.Time, tsMillis int64, ls []prompb.Label) *Error {
	if l.CreationGracePeriod <= 0 {
		return nil
	}
	if limit := now.Add(l.CreationGracePeriod).UnixMilli(); tsMillis > limit {
		return &Error{
			Reason: ReasonTooFarInFuture,
			Detail: fmt.Sprintf("sample timestamp %s is more than %s in the future", time.UnixMilli(tsMillis).UTC().Format(time.RFC3339Nano), l.CreationGracePeriod),
			Series: SeriesString(ls),
		}
	}
	return nil
}

// Series checks the labels and every sample and histogram timestamp of ts.
func Series(l *limits.Limits, now time.Time, ts *prompb.TimeSeries) *Error {
	if err := Labels(l, ts.Labels); err != nil {
		return err
	}
	for _, s := range ts.Samples {
		if err := Timestamp(l, now, s.Timestamp, ts.Labels); err != nil {
			return err
		}
	}
	for _, h := range ts.Histograms {
		if err := Timestamp(l, now, h.Timestamp, ts.Labels); err != nil {
			return err
		}
	}
	return nil
}

// Metadata checks pushed metric metadata: a metric family name, and name,
// help and unit within the tenant's length limit.
func Metadata(l *limits.Limits, md *prompb.MetricMetadata) *Error {
	if md.MetricFamilyName == "" {
		return &Error{Reason: ReasonMetadataMissingName, Detail: "metadata has no metric family name", Series: "{}"}
	}
	if l.MaxMetadataLength > 0 {
		for _, f := range []struct{ name, v string }{{"metric family name", md.MetricFamilyName}, {"help", md.Help}, {"unit", md.Unit}} {
			if len(f.v) > l.MaxMetadataLength {
				return &Error{
					Reason: ReasonMetadataTooLong,
					Detail: fmt.Sprintf("metadata %s of %d bytes is longer than the limit of %d bytes", f.name, len(f.v), l.MaxMetadataLength),
					Series: SeriesString([]prompb.Label{{Name: model.MetricNameLabel, Value: md.MetricFamilyName}}),
				}
			}
		}
	}
	return nil
}
