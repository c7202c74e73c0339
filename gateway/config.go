package gateway

import (
	"fmt"
	"net"
	"time"
)

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
	// ReadTimeout bounds reading a request's headers.
	ReadTimeout time.Duration `toml:"read_timeout"`
	// IdleTimeout closes keep-alive connections idle between requests.
	IdleTimeout time.Duration `toml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's headers; larger gets 431.
	MaxHeaderBytes int `toml:"max_header_bytes"`
	// CORSOrigin is sent as Access-Control-Allow-Origin; "*" serves any
	// web player, empty sends no CORS headers.
	CORSOrigin string `toml:"cors_origin"`
	// Pprof serves Go's profiler at /debug/pprof/ (for profiling and
	// goroutine dumps; keep it off on a public listener).
	Pprof bool `toml:"pprof"`
}

// DefaultConfig returns the defaults used when a key is absent.
func DefaultConfig() Config {
	return Config{
		Listen:         "127.0.0.1:8080",
		StartTimeout:   10 * time.Second,
		WriteTimeout:   10 * time.Second,
		ReadTimeout:    10 * time.Second,
		IdleTimeout:    30 * time.Second,
		MaxHeaderBytes: 8192,
		CORSOrigin:     "*",
	}
}

// Validate reports the first invalid field, named by its config key.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("http.listen: %w", err)
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
	} {
		if d.v < d.min {
			return fmt.Errorf("%s must be a duration of at least %s such as \"10s\", got %s", d.key, d.min, d.v)
		}
	}
	if c.MaxHeaderBytes < 1024 || c.MaxHeaderBytes > 1<<20 {
		return fmt.Errorf("http.max_header_bytes must be between 1024 and 1048576, got %d", c.MaxHeaderBytes)
	}
	return nil
}
