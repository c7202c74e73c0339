package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"flvgw/gateway"
	"flvgw/test/testkit"
)

// proxyV2 builds a v2 header: command, family, addresses and ports, and
// a TLV after them.
func proxyV2(cmd, family byte, src, dst []byte, sport, dport uint16, tlv []byte) []byte {
	body := append(append([]byte{}, src...), dst...)
	body = binary.BigEndian.AppendUint16(body, sport)
	body = binary.BigEndian.AppendUint16(body, dport)
	body = append(body, tlv...)
	h := append(append([]byte{}, proxyV2Sig...), 0x20|cmd, family)
	h = binary.BigEndian.AppendUint16(h, uint16(len(body)))
	return append(h, body...)
}

func TestReadProxyHeader(t *testing.T) {
	v6src := net.ParseIP("2001:db8::7").To16()
	for _, tc := range []struct {
		name   string
		header []byte
		want   string // the client's address; "" for none (the peer's is kept)
	}{
		{"v1 TCP4", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 51000 8080\r\n"), "192.0.2.7:51000"},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 51000 8080\r\n"), "[2001:db8::7]:51000"},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), ""},
		{"v1 UNKNOWN with addresses", []byte("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), ""},
		{"v2 TCP4 with a TLV", proxyV2(1, 0x11, []byte{192, 0, 2, 7}, []byte{198, 51, 100, 1}, 51000, 8080, []byte{0x04, 0, 1, 'x'}), "192.0.2.7:51000"},
		{"v2 TCP6", proxyV2(1, 0x21, v6src, net.ParseIP("2001:db8::1").To16(), 51000, 8080, nil), "[2001:db8::7]:51000"},
		{"v2 LOCAL (a health check)", proxyV2(0, 0x00, nil, nil, 0, 0, nil)[:16], ""},
		// What HAProxy's proxy-v2-options adds: a unique ID (up to 128
		// bytes), the TLS details and the client's SNI, past 216 bytes.
		{"v2 TCP4 with TLVs past 216 bytes", proxyV2(1, 0x11, []byte{192, 0, 2, 7}, []byte{198, 51, 100, 1}, 51000, 8080,
			append(append([]byte{0x05, 0, 128}, bytes.Repeat([]byte{'u'}, 128)...), append([]byte{0x02, 0, 253}, bytes.Repeat([]byte{'h'}, 253)...)...)), "192.0.2.7:51000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header
			if tc.name == "v2 LOCAL (a health check)" {
				binary.BigEndian.PutUint16(h[14:16], 0)
			}
			r := bytes.NewReader(append(h, "GET / HTTP/1.1\r\n"...))
			addr, err := readProxyHeader(r)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if addr != nil {
				got = addr.String()
			}
			if got != tc.want {
				t.Fatalf("client %q, want %q", got, tc.want)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != "GET / HTTP/1.1\r\n" {
				t.Fatalf("after the header: %q, want the request untouched", rest)
			}
		})
	}
	for name, bad := range map[string][]byte{
		"no header":        []byte("GET /live/x.flv HTTP/1.1\r\nHost: x\r\n\r\n"),
		"v1 without CRLF":  append([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 5 6"), bytes.Repeat([]byte(" "), 100)...),
		"v1 bad address":   []byte("PROXY TCP4 example.com 198.51.100.1 5 6\r\n"),
		"v1 family":        []byte("PROXY TCP4 2001:db8::7 2001:db8::1 5 6\r\n"),
		"v1 short":         []byte("PROXY TCP4 192.0.2.7\r\n"),
		"v2 truncated":     proxyV2(1, 0x11, []byte{192, 0, 2, 7}, []byte{198, 51, 100, 1}, 1, 2, nil)[:20],
		"v2 version 1":     append(append([]byte{}, proxyV2Sig...), 0x11, 0x11, 0, 0),
		"v2 short address": append(append([]byte{}, proxyV2Sig...), 0x21, 0x11, 0, 4, 1, 2, 3, 4),
		"v2 TLVs cut":      proxyV2(1, 0x11, []byte{192, 0, 2, 7}, []byte{198, 51, 100, 1}, 1, 2, bytes.Repeat([]byte{0}, 400))[:300],
		"one byte":         []byte("P"),
	} {
		if _, err := readProxyHeader(bytes.NewReader(bad)); !errors.Is(err, errProxyHeader) {
			t.Errorf("%s: %v, want errProxyHeader", name, err)
		}
	}
	// A connection that ends before its first byte sent no header to fault.
	if _, err := readProxyHeader(bytes.NewReader(nil)); err != io.EOF {
		t.Errorf("nothing: %v, want io.EOF", err)
	}
}

// On a real loopback connection the header names the client, whose
// address RemoteAddr gives; the bytes after it are read as they came; the
// connection passes its SyscallConn on (the viewer sessions' vectored
// writes); a connection without a header fails its first Read, and one
// that sends nothing fails with its timeout.
func TestProxyListener(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := withProxyProtocol(tcp, &proxyProtocol{timeout: 300 * time.Millisecond})
	defer ln.Close()
	dial := func(send string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", tcp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, send); err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}

	s := dial("PROXY TCP4 192.0.2.7 127.0.0.1 51000 8080\r\nGET")
	if got := s.RemoteAddr().String(); got != "192.0.2.7:51000" {
		t.Fatalf("RemoteAddr %s, want the header's client", got)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "GET" {
		t.Fatalf("read %q, %v; want GET", buf, err)
	}
	if _, ok := s.(syscall.Conn); !ok {
		t.Fatal("the connection does not pass its SyscallConn on")
	}

	s = dial("GET / HTTP/1.1\r\n\r\n")
	if _, err := s.Read(buf); !errors.Is(err, errProxyHeader) {
		t.Fatalf("a connection without a header: %v, want errProxyHeader", err)
	}
	if got := s.RemoteAddr().String(); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Fatalf("RemoteAddr of a connection without a header: %s, want its peer", got)
	}

	s = dial("")
	start := time.Now()
	if _, err := s.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Fatalf("a connection that sends nothing: %v after %s, want its timeout", err, time.Since(start))
	}
}

// logLines is a log destination safe for concurrent writes.
type logLines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveInProcess runs flvgw's serve with cfg (loaded from path, which a
// SIGHUP on sigs reloads) until the test ends (then a SIGTERM), its log in
// logs; addrOf waits for a "... listening" line of the log and returns
// its address.
func serveInProcess(t *testing.T, cfg Config, path string) (logs *logLines, addrOf func(msg string) string, sigs chan<- os.Signal) {
	t.Helper()
	logs = &logLines{}
	signals := make(chan os.Signal, 1)
	served := make(chan error, 1)
	go func() { served <- serve(cfg, path, signals, slog.New(slog.NewTextHandler(logs, nil))) }()
	t.Cleanup(func() {
		signals <- syscall.SIGTERM
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return logs, func(msg string) string {
		t.Helper()
		re := regexp.MustCompile(`msg="` + msg + `" addr=(\S+)`)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if m := re.FindStringSubmatch(logs.String()); m != nil {
				return m[1]
			}
		}
		t.Fatalf("no %q in the log:\n%s", msg, logs)
		return ""
	}, signals
}

// publishLoop publishes the sample clip in a loop to live/stream at addr
// until the test ends.
func publishLoop(t *testing.T, addr, stream string) {
	t.Helper()
	s, err := testkit.ReadFile("../../test/testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	published := make(chan struct{})
	go func() {
		defer close(published)
		_ = (&testkit.Publisher{Addr: addr, App: "live", Stream: stream, Tags: s.Tags, Loop: true}).Run(ctx)
	}()
	t.Cleanup(func() { stop(); <-published })
}

// flvgw with http.proxy_protocol on, behind a (pretend) TCP balancer:
// max_viewers_per_ip counts the clients the PROXY headers name, the
// viewers are served by the writer groups (the connection passes its
// vectored writes on), and a connection without a header is refused.
func TestServeBehindProxyProtocol(t *testing.T) {
	cfg := defaultConfig()
	cfg.HTTP.Listen, cfg.RTMP.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.HTTP.ProxyProtocol = true
	cfg.HTTP.DrainTimeout = 0
	cfg.Limits.MaxViewersPerIP = 1
	logs, addrOf, _ := serveInProcess(t, cfg, "")
	httpAddr := addrOf("http listening")
	publishLoop(t, addrOf("rtmp listening"), "pp")

	// request sends a PROXY header naming client (none if ""), then a GET.
	request := func(client, path string) (*http.Response, net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		header := ""
		if client != "" {
			header = "PROXY TCP4 " + client + " 127.0.0.1 50000 80\r\n"
		}
		if _, err := io.WriteString(c, header+"GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return nil, c
		}
		return resp, c
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, c := request("127.0.0.9", "/api/v1/streams/live/pp")
		c.Close()
		if resp != nil && resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live/pp never went live:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, tc := range []struct {
		client string
		want   int
	}{{"127.0.0.2", 200}, {"127.0.0.3", 200}, {"127.0.0.2", 429}} {
		resp, _ := request(tc.client, "/live/pp.flv")
		if resp == nil || resp.StatusCode != tc.want {
			t.Fatalf("viewer %d, from %s through the balancer: %v, want %d", i, tc.client, resp, tc.want)
		}
	}
	// Both viewers caught up are written by a writer group.
	deadline = time.Now().Add(10 * time.Second)
	for {
		resp, c := request("127.0.0.9", "/metrics")
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		if strings.Contains(string(body), "\nflvgw_writer_groups 1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the viewers behind the balancer are not in a writer group:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, _ := request("", "/live/pp.flv"); resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a connection without a PROXY header: %v, want 400", resp)
	}
}

// balancer is a TCP load balancer on loopback that sends the PROXY
// protocol: each connection to it is relayed to backend, the header
// naming client first.
func balancer(t *testing.T, backend, client string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer in.Close()
				out, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer out.Close()
				if _, err := io.WriteString(out, "PROXY TCP4 "+client+" 127.0.0.1 50000 1935\r\n"); err != nil {
					return
				}
				go func() { _, _ = io.Copy(out, in); out.Close() }()
				_, _ = io.Copy(in, out)
			})
		}
	})
	return ln.Addr().String()
}

// The embedded origin with rtmp.proxy_protocol on takes a publish through
// a balancer that sends the PROXY protocol, and knows the publisher by the
// address the header names.
func TestRTMPBehindProxyProtocol(t *testing.T) {
	cfg := defaultConfig()
	cfg.HTTP.Listen, cfg.RTMP.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RTMP.ProxyProtocol = true
	cfg.HTTP.DrainTimeout = 0
	logs, addrOf, _ := serveInProcess(t, cfg, "")
	publishLoop(t, balancer(t, addrOf("rtmp listening"), "127.0.0.7"), "lb")
	want := regexp.MustCompile(`msg="publish started" .*remote=127\.0\.0\.7:50000`)
	for deadline := time.Now().Add(10 * time.Second); !want.MatchString(logs.String()); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", want, logs)
		}
	}
}

// With proxy_protocol_from, only the balancers listed may send the PROXY
// protocol: a connection from any other peer is closed at once, before
// its header is read, and logged with the setting to look at, on the
// HTTP and the RTMP listener alike; a connection from a balancer listed
// is served as the client its header names.
func TestProxyProtocolOnlyFromItsBalancers(t *testing.T) {
	cfg := defaultConfig()
	cfg.HTTP.Listen, cfg.RTMP.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.HTTP.ProxyProtocol, cfg.RTMP.ProxyProtocol = true, true
	cfg.HTTP.ProxyProtocolFrom = []string{"127.0.0.2", "127.0.0.16/28"}
	cfg.RTMP.ProxyProtocolFrom = []string{"127.0.0.2"}
	cfg.HTTP.DrainTimeout = 0
	logs, addrOf, _ := serveInProcess(t, cfg, "")
	httpAddr, rtmpAddr := addrOf("http listening"), addrOf("rtmp listening")
	// dial connects from the loopback address from, sends a PROXY
	// header naming 192.0.2.7 and then request, and returns what comes
	// back until the connection closes.
	dial := func(from, addr, request string) string {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "PROXY TCP4 192.0.2.7 127.0.0.1 50000 80\r\n"+request)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, _ := io.ReadAll(c)
		return string(got)
	}
	const healthz = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	for _, from := range []string{"127.0.0.2", "127.0.0.17"} {
		if got := dial(from, httpAddr, healthz); !strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Fatalf("from the balancer %s: %q, want 200", from, got)
		}
	}
	for _, tc := range []struct{ addr, setting string }{{httpAddr, "http"}, {rtmpAddr, "rtmp"}} {
		if got := dial("127.0.0.3", tc.addr, healthz); got != "" {
			t.Fatalf("%s listener, from 127.0.0.3, not a balancer: %q, want the connection closed", tc.setting, got)
		}
		want := regexp.MustCompile(`level=WARN msg="connection refused: not from a balancer that may send the PROXY protocol" .*remote=127\.0\.0\.3:\d+ setting=` + tc.setting + `\.proxy_protocol_from`)
		for deadline := time.Now().Add(10 * time.Second); !want.MatchString(logs.String()); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", want, logs)
			}
		}
	}
	// Through a balancer listed, the client is who the header names.
	if got := dial("127.0.0.2", httpAddr, "GET /no-such-path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 404") {
		t.Fatalf("from the balancer: %q, want 404", got)
	}
	want := regexp.MustCompile(`msg="request refused" .*status=404 .*remote=192\.0\.2\.7:50000 `)
	for deadline := time.Now().Add(10 * time.Second); !want.MatchString(logs.String()); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", want, logs)
		}
	}
}

// Behind a balancer that sends the PROXY protocol, a connection that ends
// or idles out before its first byte (a balancer's TCP health check, a
// preconnect) is no refused request, as on a listener without it: no
// "request refused" line and no refusal counted. A connection that
// sends something other than a header is still refused with 400.
func TestProxyProtocolHealthCheckIsNoRefusal(t *testing.T) {
	cfg := defaultConfig()
	cfg.HTTP.Listen, cfg.RTMP.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.HTTP.ProxyProtocol = true
	cfg.HTTP.ReadTimeout = 300 * time.Millisecond
	cfg.HTTP.DrainTimeout = 0
	logs, addrOf, _ := serveInProcess(t, cfg, "")
	httpAddr := addrOf("http listening")
	exchange := func(send string, closeWrite bool) string {
		t.Helper()
		c, err := net.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, send)
		if closeWrite {
			_ = c.(*net.TCPConn).CloseWrite()
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, _ := io.ReadAll(c)
		return string(got)
	}
	exchange("", true)  // a TCP health check: connect, close
	exchange("", false) // a preconnect that idles out
	if got := exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", false); !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Fatalf("a request without a PROXY header: %q, want 400", got)
	}
	got := exchange("PROXY TCP4 192.0.2.7 127.0.0.1 50000 80\r\nGET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false)
	if !strings.Contains(got, `flvgw_refusals_total{reason="bad_request"} 1`+"\n") || strings.Contains(got, `reason="read_timeout"`) {
		t.Fatalf("refusals counted, want only the request without a header's:\n%s", regexp.MustCompile(`(?m)^flvgw_refusals_total.*$`).FindAllString(got, -1))
	}
	if n := strings.Count(logs.String(), `msg="request refused"`); n != 1 {
		t.Fatalf("%d refusals logged, want 1 (the request without a header):\n%s", n, logs)
	}
}

// Refused connections are logged at most once a second: a host that may
// not send the PROXY protocol cannot fill the log by connecting in a
// loop. The next line says how many went unlogged.
func TestRefusedConnectionsAreLoggedOnceASecond(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs logLines
	from, _ := gateway.ParseAddrList("http.proxy_protocol_from", []string{"127.0.0.2"})
	ln := withProxyProtocol(tcp, &proxyProtocol{timeout: time.Second, from: from, key: "http.proxy_protocol_from",
		log: slog.New(slog.NewTextHandler(&logs, nil)), refused: &refusalLog{}})
	defer ln.Close()
	go func() { _, _ = ln.Accept() }() // refuses every one of them; ends with the listener
	refuse := func(n int) {
		t.Helper()
		for range n {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
			c, err := d.Dial("tcp", tcp.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _ = c.Read(make([]byte, 1)) // until flvgw closes it
			c.Close()
		}
	}
	lines := func() int { return strings.Count(logs.String(), "connection refused") }
	refuse(50)
	if n := lines(); n != 1 {
		t.Fatalf("%d lines for 50 refusals within a second, want 1:\n%s", n, logs.String())
	}
	time.Sleep(1100 * time.Millisecond)
	refuse(1)
	if n := lines(); n != 2 || !strings.Contains(logs.String(), "unlogged_since_last=49") {
		t.Fatalf("after a second, %d lines, want 2, the second saying 49 went unlogged:\n%s", n, logs.String())
	}
}
