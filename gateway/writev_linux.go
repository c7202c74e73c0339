package gateway

import (
	"net"
	"syscall"
	"unsafe"
)

// rawWriter writes to a socket without blocking.
type rawWriter struct {
	raw     syscall.RawConn // nil: not a TCP socket
	iov     []syscall.Iovec
	writeFn func(fd uintptr) bool
	wrote   int // what the last writeNow wrote
	werr    error
}

func (v *viewer) canWriteNow() bool { return v.raw != nil }

// setupRaw prepares v's non-blocking vectored writes for writer groups.
func (v *viewer) setupRaw() {
	tc, ok := v.conn.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	v.raw = raw
	// One closure for the session's life: RawConn.Write takes a func, and
	// a new one per write would allocate.
	v.writeFn = func(fd uintptr) bool {
		for {
			n, _, errno := syscall.Syscall(syscall.SYS_WRITEV, fd,
				uintptr(unsafe.Pointer(&v.iov[0])), uintptr(len(v.iov)))
			switch errno {
			case 0:
				v.wrote = int(n)
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				v.wrote = 0
			default:
				v.wrote, v.werr = 0, errno
			}
			return true // never wait: a group does not block on a viewer
		}
	}
}

// writeNow writes bufs with one writev, as far as the socket takes them
// now; v.wrote says how far.
func (v *viewer) writeNow(bufs [][]byte) error {
	v.iov = v.iov[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			iv := syscall.Iovec{Base: &b[0]}
			iv.SetLen(len(b))
			v.iov = append(v.iov, iv)
		}
	}
	v.wrote, v.werr = 0, nil
	if err := v.raw.Write(v.writeFn); err != nil {
		return err
	}
	clear(v.iov) // drop the references to the shared bytes
	return v.werr
}
