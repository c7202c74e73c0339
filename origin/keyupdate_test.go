package origin

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flvgw/pool"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// A TLS 1.3 upstream asks for a key update (OpenSSL's s_server, told
// "K") long after the pull's first frame. The pull's reply, a write by
// crypto/tls within the pull's read, had the write deadline of the
// attempt's setup, long past: it failed, crypto/tls kept the old read key
// then, and the upstream's next record broke the pull (bad record MAC),
// a reconnect for every key update an upstream asks for.
func TestPullAnswersAKeyUpdateAfterItsSetup(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("FLVGW_REQUIRE_PEERS") == "1" { // CI
			t.Fatal("no openssl to serve TLS 1.3 with a key update, and FLVGW_REQUIRE_PEERS=1")
		}
		t.Skip("no openssl to serve TLS 1.3 with a key update")
	}
	cert, key := selfSigned(t)
	cmd := exec.Command(openssl, "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-tls1_3",
		"-cert", cert, "-key", key)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	out := bufio.NewReader(stdout)
	var addr string
	for addr == "" {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("s_server: %v", err)
		}
		if a, ok := strings.CutPrefix(strings.TrimSpace(line), "ACCEPT "); ok {
			addr = a
		}
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()

	cfg := fastEdge()
	cfg.PullTimeout = time.Second // the attempt's setup deadline
	pcfg := pool.DefaultConfig()
	pcfg.ReconnectWindow = 5 * time.Second
	p := newPullWith(t, pcfg, cfg, Upstream{Name: "tls13", URL: "https://" + addr, CAFile: cert})
	sub, err := p.Subscribe("live/x", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// s_server sends its stdin once the pull is connected. Each write is
	// a record of its own; none may begin with a byte s_server takes for
	// a command (q, Q, r, k, ...).
	head := &flvStream{t: t}
	head.buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
	head.buf.Write(pool.Tracks{Audio: true}.Header())
	head.tag(pool.TagAudio, 0, spliceAACSeq).tag(pool.TagAudio, 0, spliceAACRaw)
	if _, err := stdin.Write(head.buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	frame := func(ts uint32) {
		t.Helper()
		f := &flvStream{t: t}
		f.tag(pool.TagAudio, ts, spliceAACRaw)
		_, _ = stdin.Write(f.buf.Bytes()) // s_server is gone once the pull broke
		time.Sleep(100 * time.Millisecond)
	}
	ts := uint32(0)
	for range 15 { // past the setup's deadline
		ts += 100
		frame(ts)
	}
	if _, err := io.WriteString(stdin, "K\n"); err != nil {
		t.Fatalf("s_server gone before the key update: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	for range 5 {
		ts += 100
		frame(ts)
	}
	if st := p.Stats(); st.Reconnects != 0 {
		t.Fatalf("the pull broke at the upstream's key update (%d reconnects)", st.Reconnects)
	}
	if snap, ok := p.Lookup("live/x"); !ok || snap.State != pool.StateLive.String() || snap.TagsIn < 22 {
		t.Fatalf("entry %+v, want all 22 tags live from one session", snap)
	}
}
