package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/BurntSushi/toml"

	"flvgw/gateway"
	"flvgw/origin"
	"flvgw/pool"
)

// Config is the whole configuration file; each section belongs to the
// package that uses it.
type Config struct {
	HTTP gateway.Config `toml:"http"`
	RTMP origin.Config  `toml:"rtmp"`
	Pool pool.Config    `toml:"pool"`
	Log  LogConfig      `toml:"log"`
	// Runtime tunes the Go runtime (a restart applies it).
	Runtime RuntimeConfig `toml:"runtime"`
	// Limits and Auth govern viewers; SIGHUP reloads them.
	Limits gateway.Limits `toml:"limits"`
	Auth   gateway.Auth   `toml:"auth"`
	// Edge and Upstreams make flvgw pull streams nobody publishes to it.
	Edge      origin.EdgeConfig `toml:"edge"`
	Upstreams []origin.Upstream `toml:"upstream"`
}

// LogConfig configures the structured log on stderr.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `toml:"level"`
	// Format is text or json.
	Format string `toml:"format"`
}

func defaultConfig() Config {
	return Config{
		HTTP:    gateway.DefaultConfig(),
		RTMP:    origin.DefaultConfig(),
		Pool:    pool.DefaultConfig(),
		Log:     LogConfig{Level: "info", Format: "text"},
		Runtime: RuntimeConfig{GCPercent: DefaultGCPercent},
		Edge:    origin.DefaultEdgeConfig(),
		Limits:  gateway.DefaultLimits(),
		Auth:    gateway.DefaultAuth(),
	}
}

// loadConfig reads path over the defaults. Unknown keys and invalid values
// are errors that name the key.
func loadConfig(path string) (Config, error) {
	cfg := defaultConfig()
	md, err := toml.DecodeFile(path, &cfg)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, withoutSecret(err))
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return Config{}, fmt.Errorf("config %s: unknown key %s", path, strings.Join(keys, ", "))
	}
	if err := cfg.validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// secretKey reports whether a key holds a credential, or a URL or query
// that may carry one.
func secretKey(key string) bool {
	switch key {
	case "auth.play_secret", "auth.api_token", "auth.on_play", "auth.on_play_done",
		"rtmp.publish_secret", "rtmp.on_publish", "rtmp.on_publish_done",
		"upstream.url", "upstream.query", "upstream.play_secret":
		return true
	}
	return false
}

// withoutSecret is a TOML syntax error in the value of a secret key
// without the parser's message, which quotes what it could not read
// (expected value but found "hunter2" instead, for a secret left
// unquoted): flvgw -check prints it and a reload logs it. The line and
// the key are kept.
func withoutSecret(err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) || !secretKey(pe.LastKey) {
		return err
	}
	return fmt.Errorf("toml: line %d (last key %q): not a valid TOML value (a string needs quotes); the parser's message is left out, as it may quote the secret", pe.Position.Line, pe.LastKey)
}

func (c Config) validate() error {
	_, lerr := c.Log.level()
	var ferr error
	if c.Log.Format != "text" && c.Log.Format != "json" {
		ferr = fmt.Errorf("log.format must be text or json, got %q", c.Log.Format)
	}
	return errors.Join(c.HTTP.Validate(), c.RTMP.Validate(), c.Pool.Validate(), c.Edge.Validate(),
		origin.ValidateUpstreams(c.Upstreams), c.Limits.Validate(), c.Auth.Validate(), c.Runtime.validate(), lerr, ferr,
		gateway.CheckProxyProtocolFrom("rtmp", c.RTMP.ProxyProtocol, c.RTMP.ProxyProtocolFrom), c.listenCollision())
}

// listenCollision reports two of the listen addresses (http.listen,
// http.tls_listen, rtmp.listen) that the start could not both bind: the
// same port on the same host, or on any host and a wildcard one (":8080",
// "0.0.0.0:8080" and "[::]:8080" take the port on every address).
func (c Config) listenCollision() error {
	type bound struct {
		key, addr, host string
		port            int
	}
	var seen []bound
	for _, l := range []struct{ key, addr string }{
		{"http.listen", c.HTTP.Listen},
		{"http.tls_listen", c.HTTP.TLSListen},
		{"rtmp.listen", c.RTMP.Listen},
	} {
		if l.addr == "" {
			continue
		}
		host, p, err := net.SplitHostPort(l.addr)
		if err != nil {
			continue // refused, by its key, by its section's Validate
		}
		port, err := net.LookupPort("tcp", p)
		if err != nil || port == 0 {
			continue // refused as above, or a port the system picks
		}
		for _, o := range seen {
			if o.port == port && (o.host == host || wildcardHost(o.host) || wildcardHost(host)) {
				return fmt.Errorf("%s %q and %s %q use the same port", l.key, l.addr, o.key, o.addr)
			}
		}
		seen = append(seen, bound{l.key, l.addr, host, port})
	}
	return nil
}

func wildcardHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "" || (ip != nil && ip.IsUnspecified())
}

func (l LogConfig) level() (slog.Level, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(l.Level)); err != nil {
		return 0, fmt.Errorf("log.level must be debug, info, warn or error, got %q", l.Level)
	}
	return lvl, nil
}
