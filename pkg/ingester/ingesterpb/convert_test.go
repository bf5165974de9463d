package ingesterpb

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// pairs flattens wire labels to name, value, name, value...
func pairs(ls []*Label) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, l.Name, l.Value)
	}
	return out
}

func wire(kv ...string) []*Label {
	out := make([]*Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func TestToLabels(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   labels.Labels
		want []string
	}{
		{name: "empty", in: labels.EmptyLabels(), want: []string{}},
		{name: "one", in: labels.FromStrings("__name__", "up"), want: []string{"__name__", "up"}},
		{name: "sorted by name", in: labels.FromStrings("job", "api", "__name__", "up", "instance", "h:9090"),
			want: []string{"__name__", "up", "instance", "h:9090", "job", "api"}},
		{name: "empty value and unicode", in: labels.FromStrings("a", "", "b", "日本"), want: []string{"a", "", "b", "日本"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, pairs(ToLabels(tc.in)))
		})
	}
}

func TestFromLabels(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []*Label
		want labels.Labels
	}{
		{name: "nil", in: nil, want: labels.EmptyLabels()},
		{name: "sorted", in: wire("__name__", "up", "job", "api"), want: labels.FromStrings("__name__", "up", "job", "api")},
		{name: "unsorted gets sorted", in: wire("job", "api", "instance", "h:9090", "__name__", "up"),
			want: labels.FromStrings("__name__", "up", "instance", "h:9090", "job", "api")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := labels.NewScratchBuilder(0)
			got := FromLabels(&b, tc.in)
			require.Equal(t, tc.want.String(), got.String())
			require.True(t, labels.Equal(tc.want, got))
		})
	}
}

func TestLabelsRoundTrip(t *testing.T) {
	for _, ls := range []labels.Labels{
		labels.EmptyLabels(),
		labels.FromStrings("__name__", "up"),
		labels.FromStrings("__name__", "http_requests_total", "code", "200", "method", "GET", "path", "/a b/\"c\""),
	} {
		t.Run(ls.String(), func(t *testing.T) {
			b := labels.NewScratchBuilder(0)
			require.True(t, labels.Equal(ls, FromLabels(&b, ToLabels(ls))))
		})
	}
}

func TestFromLabelsReusesBuilderSafely(t *testing.T) {
	// The builder is reused between calls; earlier results must not change.
	b := labels.NewScratchBuilder(0)
	first := FromLabels(&b, wire("job", "a", "__name__", "up"))
	second := FromLabels(&b, wire("zone", "z", "instance", "i"))
	require.Equal(t, `{__name__="up", job="a"}`, first.String())
	require.Equal(t, `{instance="i", zone="z"}`, second.String())
}

func TestMatchersRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       *labels.Matcher
		wantType LabelMatcher_Type
		matches  []string
		misses   []string
	}{
		{name: "equal", in: labels.MustNewMatcher(labels.MatchEqual, "job", "api"), wantType: LabelMatcher_EQ,
			matches: []string{"api"}, misses: []string{"apis", ""}},
		{name: "not equal", in: labels.MustNewMatcher(labels.MatchNotEqual, "job", "api"), wantType: LabelMatcher_NEQ,
			matches: []string{"apis", ""}, misses: []string{"api"}},
		{name: "regexp", in: labels.MustNewMatcher(labels.MatchRegexp, "job", "api|web.*"), wantType: LabelMatcher_RE,
			matches: []string{"api", "web", "web-1"}, misses: []string{"apis", "xweb"}},
		{name: "not regexp", in: labels.MustNewMatcher(labels.MatchNotRegexp, "job", "api|web.*"), wantType: LabelMatcher_NRE,
			matches: []string{"apis", "xweb"}, misses: []string{"api", "web", "web-1"}},
		{name: "empty equal", in: labels.MustNewMatcher(labels.MatchEqual, "job", ""), wantType: LabelMatcher_EQ,
			matches: []string{""}, misses: []string{"api"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pb := ToMatchers([]*labels.Matcher{tc.in})
			require.Len(t, pb, 1)
			require.Equal(t, tc.wantType, pb[0].Type)
			require.Equal(t, tc.in.Name, pb[0].Name)
			require.Equal(t, tc.in.Value, pb[0].Value)

			got, err := FromMatchers(pb)
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, tc.in.Type, got[0].Type)
			require.Equal(t, tc.in.Name, got[0].Name)
			require.Equal(t, tc.in.Value, got[0].Value)
			require.Equal(t, tc.in.String(), got[0].String())
			for _, v := range tc.matches {
				require.True(t, got[0].Matches(v), "%s should match %q", got[0], v)
			}
			for _, v := range tc.misses {
				require.False(t, got[0].Matches(v), "%s should not match %q", got[0], v)
			}
		})
	}
}

func TestMatchersRoundTripKeepsOrder(t *testing.T) {
	in := []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchNotRegexp, "c", "x.*"),
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"),
		labels.MustNewMatcher(labels.MatchRegexp, "b", ".+"),
		labels.MustNewMatcher(labels.MatchNotEqual, "a", "1"),
	}
	got, err := FromMatchers(ToMatchers(in))
	require.NoError(t, err)
	require.Len(t, got, len(in))
	for i := range in {
		require.Equal(t, in[i].String(), got[i].String())
	}

	empty, err := FromMatchers(ToMatchers(nil))
	require.NoError(t, err)
	require.Empty(t, empty)
}

func TestFromMatchersErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []*LabelMatcher
		wantErr string
	}{
		{
			name:    "unknown type",
			in:      []*LabelMatcher{{Type: 4, Name: "job", Value: "api"}},
			wantErr: "unknown matcher type 4",
		},
		{
			name:    "negative type",
			in:      []*LabelMatcher{{Type: -1, Name: "job", Value: "api"}},
			wantErr: "unknown matcher type -1",
		},
		{
			name:    "bad regexp",
			in:      []*LabelMatcher{{Type: LabelMatcher_RE, Name: "job", Value: "api("}},
			wantErr: "matcher job: error parsing regexp: missing closing ): `api(`",
		},
		{
			name:    "bad negative regexp after a good matcher",
			in:      []*LabelMatcher{{Type: LabelMatcher_EQ, Name: "a", Value: "b"}, {Type: LabelMatcher_NRE, Name: "job", Value: "[z-a]"}},
			wantErr: "matcher job: error parsing regexp: invalid character class range: `z-a`",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromMatchers(tc.in)
			require.EqualError(t, err, tc.wantErr)
			require.Nil(t, got)
		})
	}
}
