package ingesterpb

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
)

// ToLabels converts labels to their wire form.
func ToLabels(ls labels.Labels) []*Label {
	out := make([]*Label, 0, ls.Len())
	ls.Range(func(l labels.Label) {
		out = append(out, &Label{Name: l.Name, Value: l.Value})
	})
	return out
}

// FromLabels converts labels from their wire form; b is reused.
func FromLabels(b *labels.ScratchBuilder, ls []*Label) labels.Labels {
	b.Reset()
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	return b.Labels()
}

// ToMatchers converts matchers to their wire form.
func ToMatchers(ms []*labels.Matcher) []*LabelMatcher {
	out := make([]*LabelMatcher, 0, len(ms))
	for _, m := range ms {
		var t LabelMatcher_Type
		switch m.Type {
		case labels.MatchEqual:
			t = LabelMatcher_EQ
		case labels.MatchNotEqual:
			t = LabelMatcher_NEQ
		case labels.MatchRegexp:
			t = LabelMatcher_RE
		case labels.MatchNotRegexp:
			t = LabelMatcher_NRE
		}
		out = append(out, &LabelMatcher{Type: t, Name: m.Name, Value: m.Value})
	}
	return out
}

// FromMatchers converts matchers from their wire form.
func FromMatchers(ms []*LabelMatcher) ([]*labels.Matcher, error) {
	out := make([]*labels.Matcher, 0, len(ms))
	for _, m := range ms {
		var t labels.MatchType
		switch m.Type {
		case LabelMatcher_EQ:
			t = labels.MatchEqual
		case LabelMatcher_NEQ:
			t = labels.MatchNotEqual
		case LabelMatcher_RE:
			t = labels.MatchRegexp
		case LabelMatcher_NRE:
			t = labels.MatchNotRegexp
		default:
			return nil, fmt.Errorf("unknown matcher type %d", m.Type)
		}
		lm, err := labels.NewMatcher(t, m.Name, m.Value)
		if err != nil {
			return nil, fmt.Errorf("matcher %s: %w", m.Name, err)
		}
		out = append(out, lm)
	}
	return out, nil
}
