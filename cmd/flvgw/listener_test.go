package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// scriptedListener answers Accept with its errors in turn (nil: conn),
// then with conn.
type scriptedListener struct {
	net.Listener // nil: only Accept, Close and Addr are called
	errs         []error
	conn         net.Conn
	calls        int
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	l.calls++
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		if err != nil {
			return nil, err
		}
	}
	if l.conn == nil {
		select {} // as a listener with nothing to accept
	}
	return l.conn, nil
}

// countingHandler counts the log records by message.
type countingHandler struct {
	slog.Handler
	counts map[string]int
}

func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.counts[r.Message]++
	return nil
}

func (l *scriptedListener) Close() error   { return nil }
func (l *scriptedListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

func TestAcceptWaitsOutShortages(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()

	// Out of descriptors three times, then a connection: Accept returns it.
	inner := &scriptedListener{errs: []error{acceptErr(syscall.EMFILE), acceptErr(syscall.ENFILE), acceptErr(syscall.ENOBUFS)}, conn: c1}
	if c, err := retryAccept(inner, quiet).Accept(); c != c1 || err != nil || inner.calls != 4 {
		t.Fatalf("after shortages: %v, %v after %d calls", c, err, inner.calls)
	}

	// A process at its limit fails and succeeds in turn: one warning and
	// one recovery line, not one of each per accept.
	var script []error
	for range 50 {
		script = append(script, acceptErr(syscall.EMFILE), nil)
	}
	counted := &countingHandler{Handler: slog.NewTextHandler(io.Discard, nil), counts: map[string]int{}}
	ln := retryAccept(&scriptedListener{errs: script, conn: c1}, slog.New(counted))
	for range 50 {
		if _, err := ln.Accept(); err != nil {
			t.Fatal(err)
		}
	}
	if w, a := counted.counts["accept failed; connections wait in the backlog"], counted.counts["accepting again"]; w != 1 || a != 1 {
		t.Fatalf("50 failed accepts each followed by one that worked: %d warnings, %d recoveries logged, want 1 and 1", w, a)
	}

	// Any other error comes back at once.
	other := errors.New("listener broken")
	inner = &scriptedListener{errs: []error{other}}
	if _, err := retryAccept(inner, quiet).Accept(); !errors.Is(err, other) {
		t.Fatalf("another error: %v", err)
	}

	// Close ends an Accept that waits to retry, as a closed listener's.
	inner = &scriptedListener{}
	for range 100 {
		inner.errs = append(inner.errs, acceptErr(syscall.EMFILE))
	}
	ln = retryAccept(inner, quiet)
	done := make(chan error, 1)
	go func() { _, err := ln.Accept(); done <- err }()
	time.Sleep(50 * time.Millisecond)
	_ = ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end an Accept waiting to retry")
	}
}
