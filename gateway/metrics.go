package gateway

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"flvgw/pool"
)

// metrics are the gateway's Prometheus series, on a registry of its own.
type metrics struct {
	registry  *prometheus.Registry
	responses *prometheus.CounterVec
	sessions  prometheus.Counter
	bytesOut  prometheus.Counter
	skips     prometheus.Counter
	handler   fasthttp.RequestHandler
}

func newMetrics(p *pool.Pool, viewers *viewerSet) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		registry: reg,
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flvgw_http_responses_total",
			Help: "HTTP responses by status code.",
		}, []string{"code"}),
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
	}
	stat := func(f func(pool.Stats) float64) func() float64 {
		return func() float64 { return f(p.Stats()) }
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.responses, m.sessions, m.bytesOut, m.skips,
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
			Name: "flvgw_evictions_total", Help: "Idle entries evicted.",
		}, stat(func(s pool.Stats) float64 { return float64(s.Evictions) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flvgw_viewer_connections", Help: "Viewer connections being served, including those waiting for a stream.",
		}, func() float64 { return float64(viewers.count()) }),
	)
	m.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return m
}

func (m *metrics) response(code int) {
	m.responses.WithLabelValues(strconv.Itoa(code)).Inc()
}
