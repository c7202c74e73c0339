package gateway

import (
	"runtime"
	"runtime/debug"
)

// BuildInfo says which flvgw this is: the commit it was built from (as
// the Go toolchain recorded it from the checkout; "unknown" for a build
// without one, such as from a source archive), whether the checkout had
// changes, and the Go version.
type BuildInfo struct {
	Revision  string
	Modified  bool
	GoVersion string
}

// linkedRevision is the commit a build without the git history names
// with -ldflags "-X flvgw/gateway.linkedRevision=<commit>", as the
// Dockerfile does from its REVISION build argument: the toolchain records
// none when .git is not in the build's context. Set at link time, never
// changed.
var linkedRevision string

// Build reads the running binary's BuildInfo.
func Build() BuildInfo {
	b := BuildInfo{Revision: "unknown", GoVersion: runtime.Version()}
	if linkedRevision != "" {
		b.Revision = linkedRevision
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the short form -version prints: the commit's first 12
// digits, "+modified" after it for a changed checkout, and Go's version.
func (b BuildInfo) String() string {
	rev := b.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if b.Modified {
		rev += "+modified"
	}
	return "flvgw " + rev + " " + b.GoVersion
}
