package gateway

import (
	"context"
	"errors"
	"sync"
)

// Reasons a viewer session is refused before it starts.
var (
	errShuttingDown = errors.New("gateway: shutting down")
	errDraining     = errors.New("gateway: draining")
	errTooMany      = errors.New("gateway: max_viewers reached")
	errTooManyIP    = errors.New("gateway: max_viewers_per_ip reached")
)

// viewerSet tracks the running viewer sessions: their count in all and
// per client address (for the limits), and their cancel functions, so
// that shutdown can end them and wait for them.
type viewerSet struct {
	mu       sync.Mutex
	closing  bool
	draining bool
	n        int
	perIP    map[string]int
	cancels  map[int]context.CancelFunc
	next     int
	empty    chan struct{} // closed when closing and n reaches 0
}

func newViewerSet() *viewerSet {
	return &viewerSet{
		cancels: make(map[int]context.CancelFunc),
		perIP:   make(map[string]int),
		empty:   make(chan struct{}),
	}
}

// add registers a session from ip within the limits (0: none). done must
// be called exactly once when the session ends.
func (s *viewerSet) add(ip string, maxTotal, maxPerIP int) (ctx context.Context, done func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refusalLocked(ip, maxTotal, maxPerIP); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	id := s.next
	s.next++
	s.cancels[id] = cancel
	s.n++
	s.perIP[ip]++
	return ctx, func() {
		cancel()
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.cancels, id)
		s.n--
		if s.perIP[ip]--; s.perIP[ip] == 0 {
			delete(s.perIP, ip)
		}
		if s.closing && s.n == 0 {
			close(s.empty)
		}
	}, nil
}

// admits reports why a session from ip would be refused now, nil if it
// would not: what add would answer, without registering one.
func (s *viewerSet) admits(ip string, maxTotal, maxPerIP int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refusalLocked(ip, maxTotal, maxPerIP)
}

func (s *viewerSet) refusalLocked(ip string, maxTotal, maxPerIP int) error {
	switch {
	case s.closing:
		return errShuttingDown
	case s.draining:
		return errDraining
	case maxTotal > 0 && s.n >= maxTotal:
		return errTooMany
	case maxPerIP > 0 && s.perIP[ip] >= maxPerIP:
		return errTooManyIP
	}
	return nil
}

// count reports the running sessions.
func (s *viewerSet) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// drain refuses new sessions and lets the running ones go on.
func (s *viewerSet) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining = true
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
