package bucket

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func defaults(t *testing.T) Config {
	t.Helper()
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"unknown backend", func(c *Config) { c.Backend = "ftp" }, `unknown storage.backend "ftp": use one of filesystem, s3, gcs, azure`},
		{"filesystem without dir", func(c *Config) { c.Filesystem.Dir = "" }, "storage.filesystem.dir must be set"},
		{"s3 without bucket", func(c *Config) { c.Backend = S3; c.S3.Endpoint = "s3.local" }, "storage.s3.endpoint and storage.s3.bucket_name must be set"},
		{"s3", func(c *Config) { c.Backend = S3; c.S3.Endpoint = "s3.local"; c.S3.BucketName = "b" }, ""},
		{"gcs without bucket", func(c *Config) { c.Backend = GCS }, "storage.gcs.bucket_name must be set"},
		{"azure without container", func(c *Config) { c.Backend = Azure; c.Azure.AccountName = "a" }, "storage.azure.account_name and storage.azure.container_name must be set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults(t)
			tc.change(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.wantErr)
		})
	}
}

func TestFilesystemBucketIsInstrumented(t *testing.T) {
	c := defaults(t)
	c.Filesystem.Dir = t.TempDir()
	reg := prometheus.NewRegistry()
	b, err := New(context.Background(), c, "ingester", slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	defer b.Close()
	ctx := context.Background()
	require.NoError(t, b.Upload(ctx, "t/x", bytes.NewReader([]byte("hello"))))
	r, err := b.Get(ctx, "t/x")
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	r.Close()
	require.Equal(t, "hello", string(got))
	_, err = b.Get(ctx, "t/missing")
	require.True(t, b.IsObjNotFoundErr(err))
	require.Equal(t, 2.0, opCount(t, reg, "get"))
	require.Equal(t, 1.0, opCount(t, reg, "upload"))
}

// opCount is neocortex_objstore_bucket_operations_total for op.
func opCount(t *testing.T, reg *prometheus.Registry, op string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "neocortex_objstore_bucket_operations_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" && l.GetValue() == op {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
