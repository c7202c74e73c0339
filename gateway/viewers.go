package gateway

import (
	"context"
	"sync"
)

// viewerSet tracks the running viewer sessions so that shutdown can end
// them and wait for them.
type viewerSet struct {
	mu      sync.Mutex
	closing bool
	n       int
	cancels map[int]context.CancelFunc
	next    int
	empty   chan struct{} // closed when closing and n reaches 0
}

func newViewerSet() *viewerSet {
	return &viewerSet{cancels: make(map[int]context.CancelFunc), empty: make(chan struct{})}
}

// add registers a session; ok is false once shutdown began. done must be
// called exactly once when the session ends.
func (s *viewerSet) add() (ctx context.Context, done func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancel(context.Background())
	id := s.next
	s.next++
	s.cancels[id] = cancel
	s.n++
	return ctx, func() {
		cancel()
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.cancels, id)
		s.n--
		if s.closing && s.n == 0 {
			close(s.empty)
		}
	}, true
}

// count reports the running sessions.
func (s *viewerSet) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// closeAll refuses new sessions, ends the running ones, and waits for them
// until ctx is done.
func (s *viewerSet) closeAll(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		if s.n == 0 {
			close(s.empty)
		}
	}
	for _, cancel := range s.cancels {
		cancel()
	}
	s.mu.Unlock()
	select {
	case <-s.empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
