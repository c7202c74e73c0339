package gateway

import (
	"syscall"
	"unsafe"
)

// iovScratch is a writer group's iovec array, shared by its members (it
// writes to one at a time), so that a viewer keeps none of its own.
type iovScratch = []syscall.Iovec

// rawWriter writes to a socket without blocking.
type rawWriter struct {
	raw     syscall.RawConn // nil: not a TCP socket
	iov     []syscall.Iovec // during writeNow only: the group's scratch
	writeFn func(fd uintptr) bool
	wrote   int // what the last writeNow wrote
	werr    error
}

func (v *viewer) canWriteNow() bool { return v.raw != nil }

// setupRaw prepares v's non-blocking vectored writes for writer groups.
func (v *viewer) setupRaw() {
	// A *net.TCPConn, or a connection that passes its SyscallConn on
	// (behind a PROXY protocol listener). Not TLS: its bytes are not the
	// tags'.
	sc, ok := v.conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
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
// now; v.wrote says how far. scratch is the caller's iovec array.
func (v *viewer) writeNow(bufs [][]byte, scratch *iovScratch) error {
	iov := (*scratch)[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			iv := syscall.Iovec{Base: &b[0]}
			iv.SetLen(len(b))
			iov = append(iov, iv)
		}
	}
	v.iov = iov
	v.wrote, v.werr = 0, nil
	err := v.raw.Write(v.writeFn)
	clear(iov) // drop the references to the shared bytes
	*scratch, v.iov = iov, nil
	if err != nil {
		return err
	}
	return v.werr
}
