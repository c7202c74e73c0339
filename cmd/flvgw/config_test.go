package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "c.toml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := loadConfig(write("[pool]\nidle_timeout = \"5s\"\n[rtmp]\nlisten = \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pool.IdleTimeout != 5*time.Second || cfg.RTMP.Listen != "" || cfg.Pool.MaxEntries != 1024 ||
		cfg.Runtime.GCPercent != DefaultGCPercent {
		t.Fatalf("decoded %+v", cfg)
	}
	for _, f := range []string{"../../etc/gw.toml", "../../etc/edge.toml"} {
		if _, err := loadConfig(f); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	edge, _ := loadConfig("../../etc/edge.toml")
	if len(edge.Upstreams) != 3 || edge.Upstreams[2].URL != "http://127.0.0.1:8081" {
		t.Fatalf("edge upstreams: %+v", edge.Upstreams)
	}
	for _, tc := range []struct{ body, mention string }{
		{"[http]\nlisen = \"x\"\n", "unknown key http.lisen"},
		{"[pool]\nidle_timeout = 30\n", "pool.idle_timeout"},
		{"[pool]\nbuffer_tags = 3\n", "pool.buffer_tags"},
		{"[pool]\nbuffer_bytes = 65536\n", "pool.buffer_bytes"},
		{"[rtmp]\nmax_connections = -1\n", "rtmp.max_connections"},
		{"[rtmp]\nmax_connections_per_ip = -1\n", "rtmp.max_connections_per_ip"},
		{"[http]\ndelivery = \"pipe\"\n", "http.delivery"},
		{"[http]\nstart_timeout = \"-1s\"\n", "http.start_timeout"},
		{"[rtmp]\nlisten = \"1935\"\n", "rtmp.listen"},
		{"[log]\nformat = \"xml\"\n", "log.format"},
		{"not toml", "c.toml"},
		{"[[upstream]]\nname = \"a\"\nurl = \"ftp://x:1\"\n", "upstream[0].url"},
		{"[[upstream]]\nname = \"a\"\nurl = \"rtmp://x\"\n", "upstream[0].url"},
		{"[[upstream]]\nname = \"a\"\nurl = \"rtmp://x:1/live\"\n", "upstream[0].url"},
		{"[[upstream]]\nurl = \"rtmp://x:1\"\n", "upstream[0].name"},
		{"[[upstream]]\nname = \"a\"\nurl = \"rtmp://x:1\"\n[[upstream]]\nname = \"a\"\nurl = \"rtmp://y:1\"\n", "upstream[1].name"},
		{"[[upstream]]\nname = \"a\"\nurl = \"rtmp://x:1\"\napps = [\"a/b\"]\n", "upstream[0].apps"},
		{"[[upstream]]\nname = \"a\"\nurl = \"rtmp://x:1\"\nquery = \"?key=1\"\n", "upstream[0].query"},
		{"[[upstream]]\nname = \"a\"\nurl = \"http://x:1\"\nquery = \"key=1\\r\\nX-Evil: 1\"\n", "upstream[0].query"},
		{"[[upstream]]\nname = \"a\"\nurl = \"http://x:1\"\nquery = \"key=%zz\"\n", "upstream[0].query"},
		{"[[upstream]]\nname = \"a\"\nurl = \"http://x:1\"\nquery = \"token=1\"\nplay_secret = \"s\"\n", "upstream[0].query"},
		{"[edge]\npull_timeout = \"1ms\"\n", "edge.pull_timeout"},
		{"[edge]\nnot_found_ttl = \"-1s\"\n", "edge.not_found_ttl"},
		{"[pool]\nreconnect_window = \"-1s\"\n", "pool.reconnect_window"},
		{"[auth]\non_play = \"ftp://x\"\n", "auth.on_play"},
		{"[rtmp]\non_publish = \"hook\"\n", "rtmp.on_publish"},
		{"[limits]\nmax_name_length = 300\n", "limits.max_name_length"},
		{"[limits]\nmax_viewers = -1\n", "limits.max_viewers"},
		{"[limits]\nipv6_prefix = 16\n", "limits.ipv6_prefix"},
		{"[limits]\nipv6_prefix = 129\n", "limits.ipv6_prefix"},
		{"[http]\ntls_listen = \"127.0.0.1:1\"\n", "http.tls_listen"},
		{"[http]\ncors_origins = [\"player.example\"]\n", "http.cors_origins"},
		{"[pool]\nmax_lag = \"-1s\"\n", "pool.max_lag"},
		{"[runtime]\ngc_percent = 0\n", "runtime.gc_percent"},
		{"[runtime]\ngc_percent = 5000\n", "runtime.gc_percent"},
		{"[http]\nproxy_protocol = true\nproxy_protocol_from = [\"lb.example\"]\n", "http.proxy_protocol_from"},
		{"[http]\nproxy_protocol_from = [\"10.0.0.0/8\"]\n", "http.proxy_protocol_from"},
		{"[rtmp]\nproxy_protocol = true\nproxy_protocol_from = [\"10.0.0.0/33\"]\n", "rtmp.proxy_protocol_from"},
		{"[rtmp]\nproxy_protocol_from = [\"10.0.0.1\"]\n", "rtmp.proxy_protocol_from"},
		// With the origin off, its other keys still apply after a SIGHUP
		// and are read when it is turned on.
		{"[rtmp]\nlisten = \"\"\nread_timeout = \"0s\"\n", "rtmp.read_timeout"},
		{"[rtmp]\nlisten = \"\"\non_publish = \"hook\"\n", "rtmp.on_publish"},
	} {
		_, err := loadConfig(write(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%q: %v, want a message naming %s", tc.body, err, tc.mention)
		}
	}
}

// -version prints the build to stdout, reading no configuration.
func TestVersionFlag(t *testing.T) {
	var out, errs bytes.Buffer
	if err := run([]string{"-version", "-config", "/nonexistent.toml"}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); !strings.HasPrefix(got, "flvgw ") || !strings.HasSuffix(got, " "+runtime.Version()) {
		t.Fatalf("-version printed %q, want flvgw, the commit and %s", got, runtime.Version())
	}
}

func TestCheckFlag(t *testing.T) {
	var out strings.Builder
	if err := run([]string{"-check", "-config", "../../etc/gw.toml"}, io.Discard, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "ok") {
		t.Fatalf("output %q", out.String())
	}
	if err := run([]string{"-check", "-config", "/nonexistent.toml"}, io.Discard, &out); err == nil {
		t.Fatal("missing config accepted")
	}
}

// writeKeyPair writes a self-signed certificate and its key (PEM) to dir.
func writeKeyPair(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestCheckRefusesWhatStartRefuses: -check (and so SIGHUP, which loads
// the file the same way) refuses a file the start would refuse, naming
// the key: TLS files that are missing or not a key pair, a port that is
// none, two listeners on one port.
func TestCheckRefusesWhatStartRefuses(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeKeyPair(t, dir)
	path := filepath.Join(dir, "c.toml")
	check := func(body string) error {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		return run([]string{"-check", "-config", path}, io.Discard, &out)
	}
	tls := func(listen, cert, key string) string {
		return fmt.Sprintf("[http]\nlisten = \"127.0.0.1:18080\"\ntls_listen = %q\ntls_cert = %q\ntls_key = %q\n[rtmp]\nlisten = \"127.0.0.1:11935\"\n", listen, cert, key)
	}
	if err := check(tls("127.0.0.1:18443", cert, key)); err != nil {
		t.Fatalf("a valid TLS listener: %v", err)
	}
	for _, tc := range []struct{ name, body, mention string }{
		{"missing certificate", tls("127.0.0.1:18443", filepath.Join(dir, "none.pem"), key), "http.tls_cert"},
		{"key that is no key", tls("127.0.0.1:18443", cert, cert), "http.tls_key"},
		{"port out of range", "[http]\nlisten = \"127.0.0.1:70000\"\n", "http.listen"},
		{"port that is no port", "[rtmp]\nlisten = \"127.0.0.1:rtmp-port\"\n", "rtmp.listen"},
		{"http and rtmp on one port", "[http]\nlisten = \"127.0.0.1:18080\"\n[rtmp]\nlisten = \"127.0.0.1:18080\"\n", "rtmp.listen"},
		{"rtmp on the port of a wildcard http", "[http]\nlisten = \":18080\"\n[rtmp]\nlisten = \"127.0.0.1:18080\"\n", "rtmp.listen"},
		{"https on the http port", tls("127.0.0.1:18080", cert, key), "http.tls_listen"},
	} {
		err := check(tc.body)
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: -check gave %v, want a message naming %s", tc.name, err, tc.mention)
		}
	}
	// Ports the system picks never collide.
	if err := check("[http]\nlisten = \"127.0.0.1:0\"\n[rtmp]\nlisten = \"127.0.0.1:0\"\n"); err != nil {
		t.Fatalf("two listeners on port 0: %v", err)
	}
}

// A secret's value that is not valid TOML (a secret left unquoted, as a
// template may leave it) is refused without the parser's quote of it,
// which flvgw -check prints and a reload logs; the line and the key
// are still named.
func TestUnparsableSecretIsNotEchoed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	for _, tc := range []struct{ body, key string }{
		{"[auth]\nplay_secret = hunterTwo\n", "auth.play_secret"},
		{"[auth]\napi_token = hunterTwo\"x\n", "auth.api_token"},
		{"[auth]\non_play = hunterTwo\n", "auth.on_play"},
		{"[rtmp]\npublish_secret = hunterTwo\n", "rtmp.publish_secret"},
		{"[rtmp]\non_publish = hunterTwo\n", "rtmp.on_publish"},
		{"[auth]\non_play_done = hunterTwo\n", "auth.on_play_done"},
		{"[rtmp]\non_publish_done = hunterTwo\n", "rtmp.on_publish_done"},
		{"[[upstream]]\nname = \"a\"\nurl = hunterTwo\n", "upstream.url"},
		{"[[upstream]]\nname = \"a\"\nurl = \"http://x:1\"\nquery = hunterTwo\n", "upstream.query"},
		{"[[upstream]]\nname = \"a\"\nurl = \"http://x:1\"\nplay_secret = hunterTwo\n", "upstream.play_secret"},
	} {
		if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadConfig(path)
		if err == nil || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), "line ") {
			t.Errorf("%q: %v, want an error naming its line and %s", tc.body, err, tc.key)
			continue
		}
		if strings.Contains(err.Error(), "hunter") {
			t.Errorf("%q: the error quotes the secret: %v", tc.body, err)
		}
	}
	// Other keys keep the parser's whole message.
	if err := os.WriteFile(path, []byte("[http]\nlisten = localhost\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(path); err == nil || !strings.Contains(err.Error(), `"localhost"`) {
		t.Errorf("http.listen unquoted: %v, want the parser's message", err)
	}
}
