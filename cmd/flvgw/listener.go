package main

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// Backoff of an accept that failed for want of a resource.
const (
	acceptRetryFirst = 5 * time.Millisecond
	acceptRetryMax   = time.Second
	acceptLogEvery   = 10 * time.Second
)

// retryingListener is a listener whose Accept waits out the errors that
// say the process or the system is short of something for now (file
// descriptors, socket buffers, memory) instead of returning them:
// fasthttp's Serve ends on any such error, which would end every viewer
// and flvgw with them, and go-rtmp's retries it in a loop without pause.
// It logs a warning at most once per acceptLogEvery, and the first
// accept after one.
type retryingListener struct {
	net.Listener
	log       *slog.Logger
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex // the log's bookkeeping, across Accept calls
	failures int        // failed accepts since the last warning
	lastWarn time.Time
	warned   bool // a warning awaits its "accepting again"
}

func retryAccept(ln net.Listener, log *slog.Logger) *retryingListener {
	return &retryingListener{Listener: ln, log: log, closed: make(chan struct{})}
}

func (l *retryingListener) Accept() (net.Conn, error) {
	delay := acceptRetryFirst
	for {
		c, err := l.Listener.Accept()
		if err == nil || !shortOfResources(err) {
			if err == nil {
				l.accepted()
			}
			return c, err
		}
		l.failed(err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-l.closed:
			t.Stop()
			return nil, net.ErrClosed
		}
		delay = min(2*delay, acceptRetryMax)
	}
}

// failed logs a failed accept, at most once per acceptLogEvery (a process
// at its limit may fail and succeed in turn many times a second).
func (l *retryingListener) failed(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures++
	if time.Since(l.lastWarn) < acceptLogEvery {
		return
	}
	l.log.Warn("accept failed; connections wait in the backlog", "addr", l.Addr().String(), "error", err, "failed_accepts", l.failures)
	l.lastWarn, l.failures, l.warned = time.Now(), 0, true
}

// accepted logs the first accept after a warning.
func (l *retryingListener) accepted() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.warned {
		l.log.Info("accepting again", "addr", l.Addr().String(), "failed_accepts_since_warning", l.failures)
		l.warned, l.failures = false, 0
	}
}

// Close closes the listener and ends an Accept waiting to retry.
func (l *retryingListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// shortOfResources reports an accept error that passes once something is
// freed: out of file descriptors (the process's or the system's), of
// socket buffers, or of memory.
func shortOfResources(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
