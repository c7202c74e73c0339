package origin

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"flvgw/pool"
)

// A connection that go-rtmp hands over after Serve began to end (its
// OnConnect runs on the connection's own goroutine, so it can come late)
// is closed at once and not counted among the connections Serve waits
// for: counting it would race Serve's Wait on the wait group.
func TestConnectionAcceptedWhileServeEndsIsRefused(t *testing.T) {
	p, err := pool.New(pool.DefaultConfig(), quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	s := NewServer(DefaultConfig(), p, quiet())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}

	late, peer := net.Pipe()
	defer peer.Close()
	h := s.newHandler(late)
	s.mu.Lock()
	counted := len(s.conns)
	s.mu.Unlock()
	if counted != 0 || h.tracked {
		t.Fatalf("a connection accepted after Serve ended is counted (%d connections, tracked %v)", counted, h.tracked)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the late connection was not closed: read gave %v", err)
	}
	h.OnClose() // go-rtmp's close of it must not touch the wait group
	s.wg.Wait()
}
