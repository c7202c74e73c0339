package access

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Event is the JSON body of a notification that a session ended: a
// viewer's stream (on_play_done) or a publish (on_publish_done), for an
// operator's billing, analytics or stream-state service.
type Event struct {
	Action string `json:"action"` // "play_done" or "publish_done"
	App    string `json:"app"`
	Stream string `json:"stream"`
	Client string `json:"client"` // remote address
	// Query is the one the play or publish callback got, without the "?".
	Query string `json:"query,omitempty"`
	// Bytes are the FLV bytes written to the viewer, or the media bytes
	// received from the publisher.
	Bytes      uint64 `json:"bytes"`
	DurationMS int64  `json:"duration_ms"`
	// Reason is why it ended, as the log line says it.
	Reason string `json:"reason"`
}

// Notifier posts events to an operator's HTTP service without making
// anyone wait for it: Notify returns at once, and the post runs in a
// goroutine of its own, bounded by its timeout. At most maxInFlight posts
// run at once; an event that finds them all busy (a service that answers
// slowly while thousands of viewers end) is dropped, logged and counted,
// so that a slow service costs memory and goroutines in proportion to
// maxInFlight, not to the viewers. The answer is not read beyond its
// status: a notification allows or refuses nothing.
type Notifier struct {
	slots   chan struct{}
	wg      sync.WaitGroup
	log     *slog.Logger
	sent    atomic.Uint64
	dropped atomic.Uint64
	failed  atomic.Uint64
}

// NewNotifier returns a notifier that runs at most maxInFlight posts at
// once and logs to log.
func NewNotifier(maxInFlight int, log *slog.Logger) *Notifier {
	return &Notifier{slots: make(chan struct{}, max(maxInFlight, 1)), log: log}
}

// Notify posts ev to url (the setting of config key key, which the log
// names) within timeout, in the background.
func (n *Notifier) Notify(key, url string, timeout time.Duration, ev Event) {
	select {
	case n.slots <- struct{}{}:
	default:
		// Logged at the 1st, 2nd, 4th, 8th... drop: a flood of ends
		// against a stalled service is not a flood of log lines.
		if d := n.dropped.Add(1); d&(d-1) == 0 {
			n.log.Warn("notification dropped: too many in flight", "callback", key, "action", ev.Action,
				"in_flight", cap(n.slots), "dropped", d)
		}
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() { <-n.slots }()
		err := Callback{URL: url, Timeout: timeout}.post(context.Background(), ev)
		if err == nil {
			n.sent.Add(1)
		} else { // no answer in time, or not a 2xx
			n.failed.Add(1)
			n.log.Warn("notification failed", "callback", key, "action", ev.Action,
				"app", ev.App, "stream", ev.Stream, "error", err)
		}
	}()
}

// Wait waits for the posts in flight, each bounded by its timeout.
func (n *Notifier) Wait() { n.wg.Wait() }

// Sent reports the posts answered with a 2xx.
func (n *Notifier) Sent() uint64 { return n.sent.Load() }

// Dropped reports the events dropped because maxInFlight posts ran.
func (n *Notifier) Dropped() uint64 { return n.dropped.Load() }

// Failed reports the posts that failed: no answer in time, or not a 2xx.
func (n *Notifier) Failed() uint64 { return n.failed.Load() }
