package gateway

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"flvgw/gateway/access"
)

// Limits bound what viewers may take. Zero means no bound. Each refusal
// has its status and is counted in flvgw_refusals_total{reason}.
type Limits struct {
	// MaxViewers bounds viewers in all (503).
	MaxViewers int `toml:"max_viewers"`
	// MaxViewersPerStream bounds the viewers of one stream (503).
	MaxViewersPerStream int `toml:"max_viewers_per_stream"`
	// MaxViewersPerIP bounds the viewers from one client address (429).
	MaxViewersPerIP int `toml:"max_viewers_per_ip"`
	// IPv6Prefix is how much of an IPv6 client address MaxViewersPerIP
	// counts as one client: an IPv6 subscriber usually gets a whole /64,
	// and could otherwise take a new address for every viewer. 128
	// counts each address on its own.
	IPv6Prefix int `toml:"ipv6_prefix"`
	// MaxNameLength bounds {app} and {stream} (414 beyond; at most 128).
	MaxNameLength int `toml:"max_name_length"`
}

// DefaultLimits returns the defaults used when a key is absent.
func DefaultLimits() Limits { return Limits{MaxNameLength: 128, IPv6Prefix: 64} }

// Validate reports the first invalid field, named by its config key.
func (l Limits) Validate() error {
	switch {
	case l.MaxViewers < 0, l.MaxViewersPerStream < 0, l.MaxViewersPerIP < 0:
		return fmt.Errorf("limits.max_viewers* must not be negative")
	case l.MaxNameLength < 1 || l.MaxNameLength > 128:
		return fmt.Errorf("limits.max_name_length must be between 1 and 128, got %d", l.MaxNameLength)
	case l.IPv6Prefix < 32 || l.IPv6Prefix > 128:
		return fmt.Errorf("limits.ipv6_prefix must be between 32 and 128, got %d", l.IPv6Prefix)
	}
	return nil
}

// Auth decides who may play and read the API.
type Auth struct {
	// PlaySecret, when set, requires a signed URL to play:
	// ?expires=UNIX&token=HMAC (see flvgw -sign). Wrong, expired or
	// missing tokens get 403.
	PlaySecret string `toml:"play_secret"`
	// OnPlay, when set, is POSTed {"action":"play",...} before a viewer
	// starts; a 2xx answer allows, anything else 403.
	OnPlay string `toml:"on_play"`
	// OnPlayDone, when set, is POSTed {"action":"play_done",...} when a
	// viewer's stream ends (one that got its 200), with the bytes written,
	// the duration and the reason, for billing or analytics. Its answer
	// changes nothing; see access.Notifier.
	OnPlayDone string `toml:"on_play_done"`
	// CallbackTimeout bounds OnPlay (a timeout denies) and OnPlayDone.
	CallbackTimeout time.Duration `toml:"callback_timeout"`
	// APIToken, when set, is required as "Authorization: Bearer TOKEN"
	// for /api/ (401 otherwise).
	APIToken string `toml:"api_token"`
}

// DefaultAuth returns the defaults used when a key is absent.
func DefaultAuth() Auth { return Auth{CallbackTimeout: 2 * time.Second} }

// Validate reports the first invalid field, named by its config key.
func (a Auth) Validate() error {
	if err := access.ValidateConfig("auth", "on_play", a.OnPlay, a.CallbackTimeout); err != nil {
		return err
	}
	return access.ValidateConfig("auth", "on_play_done", a.OnPlayDone, a.CallbackTimeout)
}

// Policy is what SIGHUP may change while viewers play.
type Policy struct {
	Limits Limits
	Auth   Auth
}

// Config configures the HTTP side of flvgw.
type Config struct {
	// Listen is the HTTP listen address.
	Listen string `toml:"listen"`
	// PublishWait is how long a viewer of an unknown stream waits for its
	// publisher before getting 404. Zero answers 404 at once.
	PublishWait time.Duration `toml:"publish_wait"`
	// StartTimeout bounds how long a viewer of a known stream waits for its
	// first keyframe before getting 504.
	StartTimeout time.Duration `toml:"start_timeout"`
	// WriteTimeout disconnects a viewer whose socket accepts nothing for
	// this long.
	WriteTimeout time.Duration `toml:"write_timeout"`
	// LagDisconnect is the hard slow-viewer bound: a viewer whose batch
	// reaches its socket this long after the tags arrived (after its
	// stream began, for tags older than that: the GOP cache it starts
	// with) is disconnected (counted). The soft bound, skipping to the
	// newest keyframe, is pool.max_lag. Zero disables it.
	LagDisconnect time.Duration `toml:"lag_disconnect"`
	// SendBuffer sets each viewer socket's kernel send buffer (bytes); 0
	// keeps the kernel's autotuning. A bound keeps a slow viewer's backlog
	// (latency the gateway cannot see) and the kernel memory per viewer
	// small.
	SendBuffer int `toml:"send_buffer"`
	// ReadTimeout bounds reading a request's headers.
	ReadTimeout time.Duration `toml:"read_timeout"`
	// IdleTimeout closes keep-alive connections idle between requests.
	IdleTimeout time.Duration `toml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's headers; larger gets 431.
	MaxHeaderBytes int `toml:"max_header_bytes"`
	// MaxConnections bounds the connections each listener serves at once
	// that are not viewers playing: those being read or answered, kept
	// alive between requests, or sending their headers slowly (each holds
	// a goroutine and a read buffer of max_header_bytes until
	// read_timeout or idle_timeout). A viewer's connection leaves the
	// count once its request is read (limits.max_viewers bounds those),
	// with delivery "hijack"; with "stream_writer" a viewer holds its
	// place while it waits and plays. Past it a new connection is
	// answered 503 and closed (closed only, on the HTTPS listener).
	// Zero: fasthttp's own bound, 262,144.
	MaxConnections int `toml:"max_connections"`
	// CORSOrigins are the web origins allowed to play: ["*"] allows any
	// (what public web players need); a list echoes a matching Origin;
	// empty sends no CORS headers.
	CORSOrigins []string `toml:"cors_origins"`
	// DrainTimeout: on SIGTERM the gateway turns not-ready, refuses new
	// viewers and publishes, and lets current viewers play this long
	// before ending them.
	DrainTimeout time.Duration `toml:"drain_timeout"`
	// TLSListen is an optional HTTPS address serving the same routes,
	// with TLSCert and TLSKey (PEM files).
	TLSListen string `toml:"tls_listen"`
	TLSCert   string `toml:"tls_cert"`
	TLSKey    string `toml:"tls_key"`
	// MaxStreamSeries caps how many streams get per-stream metric series.
	MaxStreamSeries int `toml:"max_stream_series"`
	// TrustedProxies are the addresses or CIDR prefixes of the load
	// balancers or CDN tiers in front of flvgw: for a request from one of
	// them, the client is the right-most address of X-Forwarded-For that is
	// not one of them, for max_viewers_per_ip, the logs and the callbacks.
	// Empty: X-Forwarded-For is ignored, the client is the connection's
	// peer.
	TrustedProxies []string `toml:"trusted_proxies"`
	// ProxyProtocol: the HTTP and HTTPS listeners are behind a TCP load
	// balancer that begins each connection with a PROXY protocol header
	// (v1 or v2) naming the client, who is then the connection's peer.
	// Every connection must begin with one.
	ProxyProtocol bool `toml:"proxy_protocol"`
	// ProxyProtocolFrom are the addresses or CIDR prefixes of the
	// balancers that may send that header: a connection from any other
	// peer is closed at once, so that a client reaching the listener
	// directly cannot name itself any address it likes. Empty: any peer
	// (the listener must then be reachable from the balancers alone).
	ProxyProtocolFrom []string `toml:"proxy_protocol_from"`
	// Pprof serves Go's profiler at /debug/pprof/ (for profiling and
	// goroutine dumps; keep it off on a public listener).
	Pprof bool `toml:"pprof"`
	// Delivery is how viewers' bytes reach their sockets: DeliveryHijack
	// (the default) or DeliveryStreamWriter, which measures worse and is
	// kept to measure against.
	Delivery string `toml:"delivery"`
}

// The values of http.delivery.
const (
	// DeliveryHijack: each viewer session owns its hijacked connection and
	// writes the shared tag bytes with one vectored write per batch.
	DeliveryHijack = "hijack"
	// DeliveryStreamWriter: fasthttp's body stream writer (a pipe and a
	// copy per viewer).
	DeliveryStreamWriter = "stream_writer"
)

// DefaultConfig returns the defaults used when a key is absent.
func DefaultConfig() Config {
	return Config{
		Listen:          "127.0.0.1:8080",
		StartTimeout:    10 * time.Second,
		WriteTimeout:    10 * time.Second,
		LagDisconnect:   15 * time.Second,
		ReadTimeout:     10 * time.Second,
		IdleTimeout:     30 * time.Second,
		MaxHeaderBytes:  8192,
		MaxConnections:  10000,
		CORSOrigins:     []string{"*"},
		DrainTimeout:    30 * time.Second,
		MaxStreamSeries: 100,
		Delivery:        DeliveryHijack,
	}
}

// checkListen reports a TCP listen address that net.Listen would refuse
// for its form (no port, or a port out of range or unknown), named by
// its config key. Whether the address can be bound is for the start.
func checkListen(key, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// Validate reports the first invalid field, named by its config key.
func (c Config) Validate() error {
	if err := checkListen("http.listen", c.Listen); err != nil {
		return err
	}
	for _, d := range []struct {
		key string
		v   time.Duration
		min time.Duration
	}{
		{"http.publish_wait", c.PublishWait, 0},
		{"http.start_timeout", c.StartTimeout, 10 * time.Millisecond},
		{"http.write_timeout", c.WriteTimeout, 10 * time.Millisecond},
		{"http.read_timeout", c.ReadTimeout, 10 * time.Millisecond},
		{"http.idle_timeout", c.IdleTimeout, 10 * time.Millisecond},
		{"http.drain_timeout", c.DrainTimeout, 0},
		{"http.lag_disconnect", c.LagDisconnect, 0},
	} {
		if d.v < d.min {
			return fmt.Errorf("%s must be a duration of at least %s such as \"10s\", got %s", d.key, d.min, d.v)
		}
	}
	if c.MaxHeaderBytes < 1024 || c.MaxHeaderBytes > 1<<20 {
		return fmt.Errorf("http.max_header_bytes must be between 1024 and 1048576, got %d", c.MaxHeaderBytes)
	}
	if c.MaxConnections < 0 {
		return fmt.Errorf("http.max_connections must not be negative, got %d", c.MaxConnections)
	}
	if c.SendBuffer < 0 || c.SendBuffer > 64<<20 {
		return fmt.Errorf("http.send_buffer must be between 0 and 67108864 bytes, got %d", c.SendBuffer)
	}
	if c.Delivery != DeliveryHijack && c.Delivery != DeliveryStreamWriter {
		return fmt.Errorf("http.delivery must be %q or %q, got %q", DeliveryHijack, DeliveryStreamWriter, c.Delivery)
	}
	if c.MaxStreamSeries < 0 {
		return fmt.Errorf("http.max_stream_series must not be negative, got %d", c.MaxStreamSeries)
	}
	if c.TLSListen != "" {
		if err := checkListen("http.tls_listen", c.TLSListen); err != nil {
			return err
		}
		if c.TLSCert == "" || c.TLSKey == "" {
			return fmt.Errorf("http.tls_listen needs http.tls_cert and http.tls_key")
		}
		// Read as the start reads them, so that -check and SIGHUP refuse
		// a file whose certificate or key the start would refuse.
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("http.tls_cert, http.tls_key: %w", err)
		}
	}
	if _, err := parseTrustedProxies(c.TrustedProxies); err != nil {
		return err
	}
	if err := CheckProxyProtocolFrom("http", c.ProxyProtocol, c.ProxyProtocolFrom); err != nil {
		return err
	}
	for _, o := range c.CORSOrigins {
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			return fmt.Errorf("http.cors_origins: %q is not \"*\" or an http(s) origin", o)
		}
	}
	return nil
}
