package gateway

import (
	"net"
	"sync"

	"github.com/valyala/fasthttp"
)

// openConns tracks the connections fasthttp serves, but for hijacked ones
// (viewer sessions close their own), so that shutdown can close those
// still open when its grace ends: a client trickling a request's headers
// holds fasthttp's shutdown until read_timeout, which may be longer. Each
// is marked once a request's first byte came (it went active).
type openConns struct {
	mu  sync.Mutex
	set map[net.Conn]bool
}

// track is fasthttp's ConnState hook.
func (o *openConns) track(c net.Conn, state fasthttp.ConnState) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch state {
	case fasthttp.StateNew:
		if o.set == nil {
			o.set = make(map[net.Conn]bool)
		}
		o.set[c] = false
	case fasthttp.StateActive:
		if _, ok := o.set[c]; ok {
			o.set[c] = true
		}
	case fasthttp.StateHijacked, fasthttp.StateClosed:
		delete(o.set, c)
	}
}

// began reports whether a byte of a request came on c.
func (o *openConns) began(c net.Conn) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.set[c]
}

// count reports the connections tracked: open, and not hijacked.
func (o *openConns) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.set)
}

// closeAll closes every tracked connection and reports how many.
func (o *openConns) closeAll() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	for c := range o.set {
		_ = c.Close()
	}
	n := len(o.set)
	clear(o.set)
	return n
}
