// Package version identifies the build: set Version with
// -ldflags "-X github.com/neocortex-metrics/neocortex/pkg/version.Version=…";
// the revision comes from the Go build info.
package version

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/prometheus/model/labels"
)

// Version is the release, "dev" for builds from a work tree.
var Version = "dev"

// Info describes the running binary.
type Info struct {
	Version   string
	Revision  string
	Branch    string
	BuildDate string
	GoVersion string
	// Labels is the labels implementation built in: "dedupelabels" (the
	// Makefile's builds) or "stringlabels" (a build without tags).
	Labels string
}

// Get returns the build information.
func Get() Info {
	info := Info{Version: Version, GoVersion: runtime.Version(), Revision: "unknown", Labels: labels.ImplementationName}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.time":
				info.BuildDate = s.Value
			}
		}
	}
	return info
}
