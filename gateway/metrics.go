package gateway

import (
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"flvgw/gateway/access"
	"flvgw/pool"
)

// metrics are the gateway's Prometheus series, on a registry of its own.
type metrics struct {
	registry  *prometheus.Registry
	responses *prometheus.CounterVec
	refusals  *prometheus.CounterVec
	sessions  prometheus.Counter
	bytesOut  prometheus.Counter
	skips     prometheus.Counter
	dropped   *prometheus.CounterVec
	ttfb      prometheus.Histogram
	delay     prometheus.Histogram
	handbacks prometheus.Counter
	upstreams upstreamCollector
	notifiers notifierCollector
	rtmp      rtmpCollector
	httpConns httpConnCounts
	handler   fasthttp.RequestHandler
}

// httpConnCounts reads the HTTP listeners' connections at scrape time.
type httpConnCounts struct {
	open    func() int    // served now, not hijacked (viewers playing are not)
	refused func() uint64 // answered 503 and closed: http.max_connections
}

func newMetrics(p *pool.Pool, viewers *viewerSet, writers *writerGroups, maxStreamSeries int) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		registry: reg,
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flvgw_http_responses_total",
			Help: "HTTP responses by status code.",
		}, []string{"code"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flvgw_refusals_total",
			Help: "Requests refused, by reason (limit_total, limit_stream, limit_ip, auth, not_found, dropped, bad_path, ...).",
		}, []string{"reason"}),
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flvgw_viewer_sessions_total",
			Help: "Viewer sessions that received a 200 stream response.",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flvgw_bytes_out_total",
			Help: "FLV bytes written to viewers.",
		}),
		skips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flvgw_viewer_skips_total",
			Help: "Times a lagging viewer skipped forward to the newest keyframe.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flvgw_viewers_dropped_total",
			Help: "Slow viewers disconnected: write_timeout (socket took nothing) or lag (past http.lag_disconnect).",
		}, []string{"reason"}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flvgw_delivery_delay_seconds",
			Help:    "From a tag's arrival at its entry to its write to a viewer's socket (the oldest tag of each write).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .0075, .01, .015, .02, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		handbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flvgw_writer_handbacks_total",
			Help: "Viewers a writer group handed back to their own session because their socket did not take a whole write.",
		}),
		ttfb: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flvgw_time_to_first_byte_seconds",
			Help:    "From a viewer's request (its connection's accept, for a connection's first request) to the first FLV bytes written to it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	for _, reason := range []string{"write_timeout", "lag"} {
		m.dropped.WithLabelValues(reason) // export both series from the start
	}
	stat := func(f func(pool.Stats) float64) func() float64 {
		return func() float64 { return f(p.Stats()) }
	}
	build := Build()
	modified := "false"
	if build.Modified {
		modified = "true"
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "flvgw_build_info",
			Help:        "1, labelled with the commit flvgw was built from, whether its checkout had changes, and the Go version.",
			ConstLabels: prometheus.Labels{"revision": build.Revision, "modified": modified, "go_version": build.GoVersion},
		}, func() float64 { return 1 }),
		// go_cpu_classes_gc_total_cpu_seconds_total: the CPU the garbage
		// collector takes (runtime.gc_percent trades it against RSS).
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/cpu/classes/gc/total:cpu-seconds$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.responses, m.refusals, m.sessions, m.bytesOut, m.skips, m.dropped, m.ttfb, m.delay, m.handbacks,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flvgw_entries", Help: "Relay entries in the pool.",
		}, stat(func(s pool.Stats) float64 { return float64(s.Entries) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flvgw_entries_idle", Help: "Relay entries without viewers, in the idle LRU.",
		}, stat(func(s pool.Stats) float64 { return float64(s.Idle) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flvgw_subscribers", Help: "Viewers registered on entries.",
		}, stat(func(s pool.Stats) float64 { return float64(s.Subscribers) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flvgw_upstream_sessions_total", Help: "Sources attached to entries: publishes and upstream pulls.",
		}, stat(func(s pool.Stats) float64 { return float64(s.UpstreamSessions) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flvgw_upstream_failures_total", Help: "Upstream pull attempts that failed (connect, handshake, not found).",
		}, stat(func(s pool.Stats) float64 { return float64(s.UpstreamFailures) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flvgw_reconnects_total", Help: "Times an entry kept its viewers through a lost source.",
		}, stat(func(s pool.Stats) float64 { return float64(s.Reconnects) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flvgw_publisher_takeovers_total", Help: "Silent publishers whose stream a new publisher of the key took over (pool.publisher_takeover).",
		}, stat(func(s pool.Stats) float64 { return float64(s.Takeovers) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flvgw_evictions_total", Help: "Idle entries evicted.",
		}, stat(func(s pool.Stats) float64 { return float64(s.Evictions) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flvgw_buffered_bytes", Help: "Bytes of tags the entries' buffers hold together (pool.max_buffered_bytes bounds them).",
		}, stat(func(s pool.Stats) float64 { return float64(s.BufferedBytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flvgw_entry_buffer_limit_bytes", Help: "Bytes each entry's buffer may hold now: pool.buffer_bytes, or its share of pool.max_buffered_bytes when that is less.",
		}, stat(func(s pool.Stats) float64 { return float64(s.EntryShare) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flvgw_bytes_in_total", Help: "Media bytes received by entries.",
		}, stat(func(s pool.Stats) float64 { return float64(s.BytesIn) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flvgw_viewer_connections", Help: "Viewer connections being served, including those waiting for a stream.",
		}, func() float64 { return float64(viewers.count()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flvgw_http_connections", Help: "HTTP connections served that are not viewers playing: being read or answered, or kept alive between requests (http.max_connections bounds them per listener).",
		}, func() float64 { return float64(m.httpConns.open()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flvgw_http_connections_refused_total", Help: "HTTP connections answered 503 and closed at once: http.max_connections reached.",
		}, func() float64 { return float64(m.httpConns.refused()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flvgw_writer_groups", Help: "Writer goroutines serving caught-up viewers (up to 64 each, per stream).",
		}, func() float64 { return float64(writers.count()) }),
		&poolCollector{pool: p, maxStreams: maxStreamSeries},
		&m.upstreams,
		&m.notifiers,
		&m.rtmp,
	)
	m.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return m
}

func (m *metrics) response(code int) {
	m.responses.WithLabelValues(strconv.Itoa(code)).Inc()
}

func (m *metrics) refusal(reason string) {
	m.refusals.WithLabelValues(reason).Inc()
}

// poolCollector reports entries by state and per-stream series, read at
// scrape time; at most maxStreams streams (by key order) get series, so a
// flood of stream keys cannot flood the metrics. A waiting entry (no
// publisher yet, or a pull before its first tag) gets none: its name is
// whatever a viewer asked for, so viewers could otherwise invent label
// values, and crowd the streams that play out of the first maxStreams.
type poolCollector struct {
	pool       *pool.Pool
	maxStreams int
}

var (
	entriesByStateDesc = prometheus.NewDesc("flvgw_entries_by_state", "Relay entries by lifecycle state.", []string{"state"}, nil)
	streamViewersDesc  = prometheus.NewDesc("flvgw_stream_viewers", "Viewers of a stream.", []string{"stream"}, nil)
	streamBytesInDesc  = prometheus.NewDesc("flvgw_stream_bytes_in_total", "Media bytes received for a stream's current entry.", []string{"stream"}, nil)
	streamBytesOutDesc = prometheus.NewDesc("flvgw_stream_bytes_out_total", "Bytes sent to a stream's viewers by its current entry.", []string{"stream"}, nil)
	streamBitrateDesc  = prometheus.NewDesc("flvgw_stream_bitrate_bits", "A stream's input bitrate over the last seconds.", []string{"stream"}, nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{entriesByStateDesc, streamViewersDesc, streamBytesInDesc, streamBytesOutDesc, streamBitrateDesc} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	byState := c.pool.Stats().ByState
	for _, state := range []string{"waiting", "live", "idle", "reconnecting"} {
		ch <- prometheus.MustNewConstMetric(entriesByStateDesc, prometheus.GaugeValue, float64(byState[state]), state)
	}
	n := 0
	for _, s := range c.pool.Snapshots() {
		if s.State == pool.StateWaiting.String() {
			continue
		}
		if n++; n > c.maxStreams {
			break
		}
		ch <- prometheus.MustNewConstMetric(streamViewersDesc, prometheus.GaugeValue, float64(s.Subscribers), s.Key)
		ch <- prometheus.MustNewConstMetric(streamBytesInDesc, prometheus.CounterValue, float64(s.BytesIn), s.Key)
		ch <- prometheus.MustNewConstMetric(streamBytesOutDesc, prometheus.CounterValue, float64(s.BytesOut), s.Key)
		ch <- prometheus.MustNewConstMetric(streamBitrateDesc, prometheus.GaugeValue, s.BitrateKbps*1000, s.Key)
	}
}

// RTMPCounts are the embedded origin's connection counts.
type RTMPCounts struct {
	Open         int    // connections open now
	RefusedTotal uint64 // closed at once, rtmp.max_connections reached
	RefusedPerIP uint64 // closed at once, rtmp.max_connections_per_ip reached
}

// rtmpCollector reports the embedded origin's connections, read at scrape
// time (Server.ReportRTMP); nothing without an origin.
type rtmpCollector struct {
	counts atomic.Pointer[func() RTMPCounts]
}

var rtmpConnectionsDesc = prometheus.NewDesc("flvgw_rtmp_connections",
	"RTMP connections open on the embedded origin, publishing or not yet.", nil, nil)

var rtmpRefusedDesc = prometheus.NewDesc("flvgw_rtmp_connections_refused_total",
	"RTMP connections closed at once by a limit: limit_total (rtmp.max_connections), limit_ip (rtmp.max_connections_per_ip).", []string{"reason"}, nil)

func (c *rtmpCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rtmpConnectionsDesc
	ch <- rtmpRefusedDesc
}

func (c *rtmpCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.counts.Load()
	if f == nil {
		return
	}
	n := (*f)()
	ch <- prometheus.MustNewConstMetric(rtmpConnectionsDesc, prometheus.GaugeValue, float64(n.Open))
	ch <- prometheus.MustNewConstMetric(rtmpRefusedDesc, prometheus.CounterValue, float64(n.RefusedTotal), "limit_total")
	ch <- prometheus.MustNewConstMetric(rtmpRefusedDesc, prometheus.CounterValue, float64(n.RefusedPerIP), "limit_ip")
}

// upstreamCollector reports each upstream's pull attempts by outcome, read
// at scrape time from what the pulls count (Server.ReportUpstreams); the
// labels are the configured upstreams' names, so they are bounded by the
// configuration.
type upstreamCollector struct {
	attempts atomic.Pointer[func() []pool.UpstreamAttempts]
}

var upstreamAttemptsDesc = prometheus.NewDesc("flvgw_upstream_attempts_total",
	"Pull attempts per upstream by result: played, not_found, unreachable, malformed.", []string{"upstream", "result"}, nil)

var upstreamTriedLastDesc = prometheus.NewDesc("flvgw_upstream_tried_last",
	"1 while an upstream that could not be reached is tried after the others (edge.unreachable_cooldown), else 0.", []string{"upstream"}, nil)

var upstreamFirstTagDesc = prometheus.NewDesc("flvgw_upstream_first_tag_seconds",
	"Time from the start of a played pull attempt (its dial) to its first audio or video frame at the entry, per upstream.", []string{"upstream"}, nil)

func (c *upstreamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- upstreamAttemptsDesc
	ch <- upstreamTriedLastDesc
	ch <- upstreamFirstTagDesc
}

func (c *upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.attempts.Load()
	if f == nil {
		return
	}
	for _, u := range (*f)() {
		for _, r := range [...]struct {
			result string
			n      uint64
		}{{"played", u.Played}, {"not_found", u.NotFound}, {"unreachable", u.Unreachable}, {"malformed", u.Malformed}} {
			ch <- prometheus.MustNewConstMetric(upstreamAttemptsDesc, prometheus.CounterValue, float64(r.n), u.Upstream, r.result)
		}
		triedLast := 0.0
		if u.TriedLast {
			triedLast = 1
		}
		ch <- prometheus.MustNewConstMetric(upstreamTriedLastDesc, prometheus.GaugeValue, triedLast, u.Upstream)
		ch <- firstTagHistogram(u)
	}
}

// firstTagHistogram is u's time to the first tag as a histogram.
func firstTagHistogram(u pool.UpstreamAttempts) prometheus.Metric {
	buckets := make(map[float64]uint64, len(u.FirstTag.Counts)-1)
	var count uint64
	for i, b := range pool.FirstTagBounds() {
		count += u.FirstTag.Counts[i]
		buckets[b] = count
	}
	count += u.FirstTag.Counts[len(u.FirstTag.Counts)-1]
	return prometheus.MustNewConstHistogram(upstreamFirstTagDesc, count, u.FirstTag.Sum.Seconds(), buckets, u.Upstream)
}

// notifierCollector reports the session-end notifications of each callback
// key (auth.on_play_done, rtmp.on_publish_done) by result.
type notifierCollector struct {
	mu   sync.Mutex
	keys []string
	by   map[string]*access.Notifier
}

var notificationsDesc = prometheus.NewDesc("flvgw_notifications_total",
	"Session-end notifications by callback and result: sent (a 2xx), failed (no answer in time, or another status), dropped (too many in flight).",
	[]string{"callback", "result"}, nil)

// add reports n's posts as those of key; a key added again is replaced.
func (c *notifierCollector) add(key string, n *access.Notifier) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = make(map[string]*access.Notifier)
	}
	if c.by[key] == nil {
		c.keys = append(c.keys, key)
	}
	c.by[key] = n
}

func (c *notifierCollector) Describe(ch chan<- *prometheus.Desc) { ch <- notificationsDesc }

func (c *notifierCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, key := range c.keys {
		n := c.by[key]
		for _, r := range [...]struct {
			result string
			n      uint64
		}{{"sent", n.Sent()}, {"failed", n.Failed()}, {"dropped", n.Dropped()}} {
			ch <- prometheus.MustNewConstMetric(notificationsDesc, prometheus.CounterValue, float64(r.n), key, r.result)
		}
	}
}
