//go:build !linux

package gateway

import "errors"

// iovScratch is unused outside Linux.
type iovScratch = struct{}

// rawWriter is empty outside Linux.
type rawWriter struct{ wrote int }

func (v *viewer) canWriteNow() bool { return false }

// setupRaw does nothing: outside Linux every session writes its own
// viewer and writer groups are not used.
func (v *viewer) setupRaw() {}

func (v *viewer) writeNow([][]byte, *iovScratch) error {
	return errors.New("gateway: non-blocking writes need Linux")
}
