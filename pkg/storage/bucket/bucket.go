// Package bucket builds the object-store client every component shares:
// filesystem (the embedded default), S3, GCS or Azure, on thanos-io/objstore.
package bucket

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/azure"
	"github.com/thanos-io/objstore/providers/filesystem"
	"github.com/thanos-io/objstore/providers/gcs"
	"github.com/thanos-io/objstore/providers/s3"

	"github.com/neocortex-metrics/neocortex/pkg/logging"
)

// Backends are the object stores a bucket can live in.
const (
	Filesystem = "filesystem"
	S3         = "s3"
	GCS        = "gcs"
	Azure      = "azure"
)

var backends = []string{Filesystem, S3, GCS, Azure}

// Config selects and configures the object store. One Config is shared by
// every component of a process.
type Config struct {
	Backend    string           `yaml:"backend"`
	Filesystem FilesystemConfig `yaml:"filesystem"`
	S3         S3Config         `yaml:"s3"`
	GCS        GCSConfig        `yaml:"gcs"`
	Azure      AzureConfig      `yaml:"azure"`
}

// FilesystemConfig is a bucket in a local directory: for one machine, or a
// shared (NFS) volume.
type FilesystemConfig struct {
	Dir string `yaml:"dir"`
}

// S3Config is a bucket on AWS S3 or any S3-compatible server.
type S3Config struct {
	Endpoint        string         `yaml:"endpoint"`
	BucketName      string         `yaml:"bucket_name"`
	Region          string         `yaml:"region"`
	AccessKeyID     string         `yaml:"access_key_id"`
	SecretAccessKey flagext.Secret `yaml:"secret_access_key"`
	Insecure        bool           `yaml:"insecure"`
	// PathStyle addresses the bucket as endpoint/bucket rather than as
	// bucket.endpoint: what most self-hosted S3 servers need.
	PathStyle bool `yaml:"path_style"`
}

// GCSConfig is a bucket on Google Cloud Storage.
type GCSConfig struct {
	BucketName     string         `yaml:"bucket_name"`
	ServiceAccount flagext.Secret `yaml:"service_account"`
}

// AzureConfig is a container on Azure Blob Storage.
type AzureConfig struct {
	AccountName   string         `yaml:"account_name"`
	AccountKey    flagext.Secret `yaml:"account_key"`
	ContainerName string         `yaml:"container_name"`
	Endpoint      string         `yaml:"endpoint_suffix"`
}

// RegisterFlags registers the bucket flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Backend, "storage.backend", Filesystem, "Object store of the long-term blocks: "+strings.Join(backends, ", ")+".")
	f.StringVar(&c.Filesystem.Dir, "storage.filesystem.dir", "./data/bucket", "Directory of the filesystem bucket.")

	f.StringVar(&c.S3.Endpoint, "storage.s3.endpoint", "", "S3 endpoint host[:port], e.g. s3.eu-west-1.amazonaws.com.")
	f.StringVar(&c.S3.BucketName, "storage.s3.bucket-name", "", "S3 bucket name.")
	f.StringVar(&c.S3.Region, "storage.s3.region", "", "S3 region (empty = found from the endpoint).")
	f.StringVar(&c.S3.AccessKeyID, "storage.s3.access-key-id", "", "S3 access key ID (empty = the AWS SDK's credential chain).")
	f.Var(&c.S3.SecretAccessKey, "storage.s3.secret-access-key", "S3 secret access key.")
	f.BoolVar(&c.S3.Insecure, "storage.s3.insecure", false, "Talk plain HTTP to the S3 endpoint.")
	f.BoolVar(&c.S3.PathStyle, "storage.s3.path-style", false, "Path-style bucket addressing (endpoint/bucket), for self-hosted S3 servers.")

	f.StringVar(&c.GCS.BucketName, "storage.gcs.bucket-name", "", "GCS bucket name.")
	f.Var(&c.GCS.ServiceAccount, "storage.gcs.service-account", "GCS service account key, as JSON (empty = application default credentials).")

	f.StringVar(&c.Azure.AccountName, "storage.azure.account-name", "", "Azure storage account name.")
	f.Var(&c.Azure.AccountKey, "storage.azure.account-key", "Azure storage account key (empty = managed identity).")
	f.StringVar(&c.Azure.ContainerName, "storage.azure.container-name", "", "Azure blob container name.")
	f.StringVar(&c.Azure.Endpoint, "storage.azure.endpoint-suffix", "", "Azure endpoint suffix (empty = blob.core.windows.net).")
}

// Validate checks that the chosen backend has what it needs.
func (c *Config) Validate() error {
	switch c.Backend {
	case Filesystem:
		if c.Filesystem.Dir == "" {
			return errors.New("storage.filesystem.dir must be set")
		}
	case S3:
		if c.S3.Endpoint == "" || c.S3.BucketName == "" {
			return errors.New("storage.s3.endpoint and storage.s3.bucket_name must be set")
		}
	case GCS:
		if c.GCS.BucketName == "" {
			return errors.New("storage.gcs.bucket_name must be set")
		}
	case Azure:
		if c.Azure.AccountName == "" || c.Azure.ContainerName == "" {
			return errors.New("storage.azure.account_name and storage.azure.container_name must be set")
		}
	default:
		return fmt.Errorf("unknown storage.backend %q: use one of %s", c.Backend, strings.Join(backends, ", "))
	}
	return nil
}

// New returns a client of the configured bucket, instrumented with
// objstore's operation metrics under the given component label. The caller
// closes it.
func New(ctx context.Context, c Config, component string, logger *slog.Logger, reg prometheus.Registerer) (objstore.InstrumentedBucket, error) {
	var (
		bkt objstore.Bucket
		err error
	)
	klog := logging.GoKit(logger)
	switch c.Backend {
	case Filesystem:
		bkt, err = filesystem.NewBucket(c.Filesystem.Dir)
	case S3:
		sc := s3.DefaultConfig
		sc.Endpoint = c.S3.Endpoint
		sc.Bucket = c.S3.BucketName
		sc.Region = c.S3.Region
		sc.AccessKey = c.S3.AccessKeyID
		sc.SecretKey = c.S3.SecretAccessKey.String()
		sc.Insecure = c.S3.Insecure
		if c.S3.PathStyle {
			sc.BucketLookupType = s3.PathLookup
		}
		// An empty key pair means the SDK's chain (env, profile, IAM role).
		sc.AWSSDKAuth = c.S3.AccessKeyID == "" && c.S3.SecretAccessKey.String() == ""
		bkt, err = s3.NewBucketWithConfig(klog, sc, component, nil)
	case GCS:
		gc := gcs.DefaultConfig
		gc.Bucket = c.GCS.BucketName
		gc.ServiceAccount = c.GCS.ServiceAccount.String()
		bkt, err = gcs.NewBucketWithConfig(ctx, klog, gc, component, nil)
	case Azure:
		ac := azure.DefaultConfig
		ac.StorageAccountName = c.Azure.AccountName
		ac.StorageAccountKey = c.Azure.AccountKey.String()
		ac.ContainerName = c.Azure.ContainerName
		if c.Azure.Endpoint != "" {
			ac.Endpoint = c.Azure.Endpoint
		}
		bkt, err = azure.NewBucketWithConfig(klog, ac, component, nil)
	default:
		err = fmt.Errorf("unknown storage.backend %q", c.Backend)
	}
	if err != nil {
		return nil, fmt.Errorf("create %s bucket client: %w", c.Backend, err)
	}
	reg = prometheus.WrapRegistererWithPrefix("neocortex_", prometheus.WrapRegistererWith(prometheus.Labels{"component": component}, reg))
	return objstore.WrapWithMetrics(bkt, reg, bkt.Name()), nil
}
