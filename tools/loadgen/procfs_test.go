package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    uint64
		wantErr bool
	}{
		{
			name: "plain",
			in:   "4242 (neocortex) S 1 4242 4242 0 -1 4194560 12345 0 3 0 1500 250 0 0 20 0 12 0 98765 1234567890 45678 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
			want: 1750,
		},
		{
			name: "command name with spaces and parentheses",
			in:   "7 (my (odd) name) R 1 7 7 0 -1 0 0 0 0 0 42 8 0 0 20 0 1 0 5 100 10",
			want: 50,
		},
		{name: "no command name", in: "7 neocortex R 1 7", wantErr: true},
		{name: "truncated", in: "7 (neocortex) R 1 7 7 0", wantErr: true},
		{name: "not a number", in: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 x 8 0 0", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseProcStatusRSS(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    uint64
		wantErr bool
	}{
		{
			name: "plain",
			in:   "Name:\tneocortex\nState:\tS (sleeping)\nVmPeak:\t 2345678 kB\nVmHWM:\t  212345 kB\nVmRSS:\t  204800 kB\nRssAnon:\t  180000 kB\nThreads:\t12\n",
			want: 204800 * 1024,
		},
		{name: "no VmRSS (a kernel thread)", in: "Name:\tkthreadd\nState:\tS (sleeping)\n", wantErr: true},
		{name: "unknown unit", in: "VmRSS:\t 12 MB\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStatusRSS(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
