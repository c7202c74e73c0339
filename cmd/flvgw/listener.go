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
// It logs the first failure of a run of them, one line per
// acceptLogEvery while it lasts, and the recovery.
type retryingListener struct {
	net.Listener
	log       *slog.Logger
	closed    chan struct{}
	closeOnce sync.Once
}

func retryAccept(ln net.Listener, log *slog.Logger) *retryingListener {
	return &retryingListener{Listener: ln, log: log, closed: make(chan struct{})}
}

func (l *retryingListener) Accept() (net.Conn, error) {
	delay := acceptRetryFirst
	var failing, lastLog time.Time
	failures := 0
	for {
		c, err := l.Listener.Accept()
		if err == nil || !shortOfResources(err) {
			if err == nil && failures > 0 {
				l.log.Info("accepting again", "addr", l.Addr().String(), "failed_accepts", failures, "for", time.Since(failing).Round(time.Millisecond))
			}
			return c, err
		}
		if failures == 0 {
			failing = time.Now()
		}
		failures++
		if time.Since(lastLog) >= acceptLogEvery {
			lastLog = time.Now()
			l.log.Warn("accept failed; connections wait in the backlog", "addr", l.Addr().String(), "error", err, "failed_accepts", failures)
		}
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
