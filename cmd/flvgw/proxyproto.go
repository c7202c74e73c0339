package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"flvgw/gateway"
	"flvgw/origin"
)

// errProxyHeader: a connection on a listener with proxy_protocol on did not
// begin with a valid PROXY protocol header.
var errProxyHeader = errors.New("proxy protocol: bad or missing PROXY header")

// proxyListener is a listener behind a TCP (layer 4) load balancer that
// sends the PROXY protocol (HAProxy's send-proxy or send-proxy-v2, AWS
// NLB, ...): each connection begins with a header naming the client, which
// becomes the connection's RemoteAddr, for max_viewers_per_ip, the logs
// and the callbacks. Every connection must begin with one: a listener
// with it on is for the balancer alone.
//
// The header is read by the connection's first Read or RemoteAddr, on the
// connection's own goroutine, within timeout: Accept never waits for a
// client. With a list of balancers (proxy_protocol_from), a connection
// from any other peer is closed at Accept, logged: the header would let
// it name any client it liked (at most one such line a second).
type proxyListener struct {
	net.Listener
	proxyProtocol
}

// proxyProtocol is how a listener takes the PROXY protocol: the header
// within timeout, from the balancers in from (any peer if empty); key
// names the setting in the log line of a refused connection.
type proxyProtocol struct {
	timeout time.Duration
	from    gateway.AddrList
	key     string
	log     *slog.Logger
	refused *refusalLog // nil: every refusal logged
}

// refusalLog limits the log lines of refused connections to one a
// second: any host that reaches the port may connect as often as it
// likes, and each line would be one more. A line after a quiet spell
// says how many refusals went unlogged since the last.
type refusalLog struct {
	mu       sync.Mutex
	last     time.Time
	unlogged int
}

// note counts a refusal at now and says whether to log it, and how many
// went unlogged before it.
func (r *refusalLog) note(now time.Time) (log bool, unlogged int) {
	if r == nil {
		return true, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.last) < time.Second {
		r.unlogged++
		return false, 0
	}
	r.last, unlogged, r.unlogged = now, r.unlogged, 0
	return true, unlogged
}

// withProxyProtocol is ln, or with pp (non-nil), ln behind a balancer that
// sends the PROXY protocol.
func withProxyProtocol(ln net.Listener, pp *proxyProtocol) net.Listener {
	if pp == nil {
		return ln
	}
	return proxyListener{Listener: ln, proxyProtocol: *pp}
}

func (l proxyListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			// Not from a TCP listener (never, from net.Listen("tcp")): an
			// error here would end the server's Serve.
			c.Close()
			continue
		}
		if peer := tc.RemoteAddr().(*net.TCPAddr).AddrPort().Addr(); len(l.from) > 0 && !l.from.Contains(peer) {
			if log, unlogged := l.refused.note(time.Now()); log {
				l.log.Warn("connection refused: not from a balancer that may send the PROXY protocol",
					"remote", tc.RemoteAddr().String(), "setting", l.key, "unlogged_since_last", unlogged)
			}
			tc.Close()
			continue
		}
		return &proxyConn{TCPConn: tc, timeout: l.timeout}, nil
	}
}

// proxyConn is a TCP connection whose client a PROXY header names. The
// TCPConn's methods are promoted, SyscallConn and SetWriteBuffer among
// them (the viewer sessions' vectored writes and send buffer), but for
// those that read: Read, and WriteTo, which would read around the header.
type proxyConn struct {
	*net.TCPConn
	timeout time.Duration
	once    sync.Once
	remote  net.Addr // the header's source; nil: the peer's (LOCAL, UNKNOWN)
	err     error
}

func (c *proxyConn) header() error {
	c.once.Do(func() {
		_ = c.TCPConn.SetReadDeadline(time.Now().Add(c.timeout))
		c.remote, c.err = readProxyHeader(c.TCPConn)
		// The deadline is left: the caller of the first Read sets its own
		// (or lives with one timeout later than it set).
	})
	return c.err
}

func (c *proxyConn) Read(p []byte) (int, error) {
	if err := c.header(); err != nil {
		return 0, err
	}
	return c.TCPConn.Read(p)
}

func (c *proxyConn) RemoteAddr() net.Addr {
	if c.header() == nil && c.remote != nil {
		return c.remote
	}
	return c.TCPConn.RemoteAddr()
}

// ReadFrom and WriteTo are TCPConn's, promoted, but for WriteTo's read
// around the header: both go through Write and Read.
func (c *proxyConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(struct{ io.Writer }{c}, r) }
func (c *proxyConn) WriteTo(w io.Writer) (int64, error)  { return io.Copy(w, struct{ io.Reader }{c}) }

// proxyV2Sig begins a version 2 (binary) header.
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// readProxyHeader reads a PROXY protocol header, version 1 (text) or 2
// (binary), and no byte after it. It returns the client's address, or nil
// for a header that names none (v1 UNKNOWN, v2 LOCAL or an address family
// other than TCP over IPv4 or IPv6: a balancer's own health check). A
// connection that ends or times out before its first byte (a balancer's
// TCP health check, a preconnect) sent no header to fault: its error is
// the read's own (io.EOF, a timeout), which the HTTP server takes for a
// connection that sent no request, as without the PROXY protocol.
func readProxyHeader(r io.Reader) (net.Addr, error) {
	// 15 bytes: the shortest v1 header ("PROXY UNKNOWN\r\n"), and within
	// the 16 of v2's fixed part.
	buf := make([]byte, 15, 232)
	if n, err := io.ReadFull(r, buf); err != nil {
		if n == 0 {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errProxyHeader, err)
	}
	switch {
	case bytes.HasPrefix(buf, []byte("PROXY ")):
		// v1: a line of at most 107 bytes; read a byte at a time so that
		// nothing after it is taken.
		for !bytes.HasSuffix(buf, []byte("\r\n")) {
			if len(buf) == 107 {
				return nil, fmt.Errorf("%w: v1 line over 107 bytes", errProxyHeader)
			}
			buf = buf[:len(buf)+1]
			if _, err := io.ReadFull(r, buf[len(buf)-1:]); err != nil {
				return nil, fmt.Errorf("%w: %w", errProxyHeader, err)
			}
		}
		return parseProxyV1(string(buf[:len(buf)-2]))
	case bytes.HasPrefix(buf, proxyV2Sig):
		buf = buf[:16]
		if _, err := io.ReadFull(r, buf[15:]); err != nil {
			return nil, fmt.Errorf("%w: %w", errProxyHeader, err)
		}
		// The addresses (at most 216 bytes, two UNIX paths) are kept; the
		// TLVs after them (what a balancer adds: a unique ID, TLS
		// details, the client's SNI, a CRC), which may run past that, are
		// read and dropped.
		n := int(binary.BigEndian.Uint16(buf[14:16]))
		keep := min(n, cap(buf)-16)
		buf = buf[:16+keep]
		if _, err := io.ReadFull(r, buf[16:]); err != nil {
			return nil, fmt.Errorf("%w: %w", errProxyHeader, err)
		}
		if _, err := io.CopyN(io.Discard, r, int64(n-keep)); err != nil {
			return nil, fmt.Errorf("%w: %w", errProxyHeader, err)
		}
		return parseProxyV2(buf[12], buf[13], buf[16:])
	}
	return nil, fmt.Errorf("%w: the connection began %q", errProxyHeader, buf)
}

// parseProxyV1 reads "PROXY TCP4|TCP6 src dst sport dport" or
// "PROXY UNKNOWN ...".
func parseProxyV1(line string) (net.Addr, error) {
	var proto, src, dst string
	var sport, dport uint16
	if n, _ := fmt.Sscanf(line, "PROXY %s %s %s %d %d", &proto, &src, &dst, &sport, &dport); n >= 1 && proto == "UNKNOWN" {
		return nil, nil
	} else if n != 5 {
		return nil, fmt.Errorf("%w: v1 line %q", errProxyHeader, line)
	}
	a, err := netip.ParseAddr(src)
	if err != nil || (proto == "TCP4") != a.Is4() || (proto != "TCP4" && proto != "TCP6") {
		return nil, fmt.Errorf("%w: v1 line %q", errProxyHeader, line)
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, sport)), nil
}

// parseProxyV2 reads a v2 header's command, family and addresses.
func parseProxyV2(verCmd, family byte, addrs []byte) (net.Addr, error) {
	if verCmd>>4 != 2 {
		return nil, fmt.Errorf("%w: v2 version %d", errProxyHeader, verCmd>>4)
	}
	switch verCmd & 0x0f {
	case 0: // LOCAL: the balancer's own connection
		return nil, nil
	case 1: // PROXY
	default:
		return nil, fmt.Errorf("%w: v2 command %d", errProxyHeader, verCmd&0x0f)
	}
	var ip []byte
	switch family {
	case 0x11: // TCP over IPv4
		if len(addrs) < 12 {
			return nil, fmt.Errorf("%w: v2 IPv4 addresses in %d bytes", errProxyHeader, len(addrs))
		}
		ip, addrs = addrs[:4], addrs[8:]
	case 0x21: // TCP over IPv6
		if len(addrs) < 36 {
			return nil, fmt.Errorf("%w: v2 IPv6 addresses in %d bytes", errProxyHeader, len(addrs))
		}
		ip, addrs = addrs[:16], addrs[32:]
	default: // UNSPEC, UDP, unix sockets: no client address to take
		return nil, nil
	}
	a, _ := netip.AddrFromSlice(ip)
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a.Unmap(), binary.BigEndian.Uint16(addrs[:2]))), nil
}

// httpProxyProtocol is how the HTTP and HTTPS listeners take the PROXY
// protocol (nil: they do not). cfg is validated.
func httpProxyProtocol(cfg gateway.Config, log *slog.Logger) *proxyProtocol {
	return proxyProtocolOf("http", cfg.ProxyProtocol, cfg.ProxyProtocolFrom, cfg.ReadTimeout, log)
}

// rtmpProxyProtocol is how the RTMP listener takes the PROXY protocol
// (nil: it does not). cfg is validated.
func rtmpProxyProtocol(cfg origin.Config, log *slog.Logger) *proxyProtocol {
	return proxyProtocolOf("rtmp", cfg.ProxyProtocol, cfg.ProxyProtocolFrom, cfg.ReadTimeout, log)
}

// proxyProtocolOf is a config section's proxy_protocol (on),
// proxy_protocol_from (from, validated) and read timeout, as a listener
// takes them; nil when on is false.
func proxyProtocolOf(section string, on bool, from []string, timeout time.Duration, log *slog.Logger) *proxyProtocol {
	if !on {
		return nil
	}
	key := section + ".proxy_protocol_from"
	list, _ := gateway.ParseAddrList(key, from)
	return &proxyProtocol{timeout: timeout, from: list, key: key, log: log, refused: &refusalLog{}}
}
