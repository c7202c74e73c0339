package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"flvgw/gateway/access"
)

// TestSignFlag: -sign prints to stdout the query that the gateway and the
// origin accept for the key, so that a script can take it with $(...), and
// refuses what would make a token nothing accepts.
func TestSignFlag(t *testing.T) {
	var stdout, stderr strings.Builder
	if err := run([]string{"-sign", "live/test", "-secret", "s3cret", "-ttl", "1h"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	q, err := url.ParseQuery(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("stdout %q: %v", stdout.String(), err)
	}
	if err := access.Check("s3cret", "live/test", q.Get("expires"), q.Get("token"), time.Now()); err != nil {
		t.Fatalf("stdout %q (stderr %q): the gateway refuses it: %v", stdout.String(), stderr.String(), err)
	}
	if err := access.Check("s3cret", "live/test", q.Get("expires"), q.Get("token"), time.Now().Add(2*time.Hour)); err == nil {
		t.Fatal("the token outlives -ttl")
	}
	// A viewer's path names the same key; the path without its leading
	// slash is refused rather than signed for a stream named test.flv.
	stdout.Reset()
	if err := run([]string{"-sign", "/live/test.flv", "-secret", "s3cret"}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	q, err = url.ParseQuery(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("stdout %q: %v", stdout.String(), err)
	}
	if err := access.Check("s3cret", "live/test", q.Get("expires"), q.Get("token"), time.Now()); err != nil {
		t.Fatalf("-sign /live/test.flv printed %q, which the gateway refuses for /live/test.flv: %v", stdout.String(), err)
	}
	for _, tc := range []struct {
		args    []string
		mention string
	}{
		{[]string{"-sign", "live/test"}, "-secret"},
		{[]string{"-sign", "live/test.flv", "-secret", "s"}, "/live/test.flv"},
		{[]string{"-sign", "/live/test.mp4", "-secret", "s"}, "-sign"},
		{[]string{"-sign", "/live/test", "-secret", "s"}, "-sign"},
		{[]string{"-sign", "live", "-secret", "s"}, "-sign"},
		{[]string{"-sign", "live/a/b", "-secret", "s"}, "-sign"},
		{[]string{"-sign", "live/test", "-secret", "s", "-ttl", "0s"}, "-ttl"},
		{[]string{"-sign", "live/test", "-secret", "s", "-ttl", "-1h"}, "-ttl"},
	} {
		var out strings.Builder
		err := run(tc.args, &out, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%q: %v (printed %q), want an error naming %s", tc.args, err, out.String(), tc.mention)
		}
	}
}

// TestArgumentsThatAreNotFlags: a config file named without -config is
// refused; before, it ended the flags and flvgw went on with the default
// file (and -check said that one was ok).
func TestArgumentsThatAreNotFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-check", "../../etc/edge.toml"},
		{"-check", "-config", "../../etc/gw.toml", "../../etc/edge.toml", "-config", "../../etc/edge.toml"},
	} {
		var stderr strings.Builder
		err := run(args, io.Discard, &stderr)
		if err == nil || !strings.Contains(err.Error(), "edge.toml") {
			t.Errorf("%q: %v (printed %q), want a refusal naming the argument", args, err, stderr.String())
		}
	}
}

// A SIGHUP applies what a reload may change and warns of the changes it
// cannot apply (they need a restart), naming their sections; a reload that
// changes only what it applies warns of nothing.
func TestReloadWarnsOfChangesNeedingARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.toml")
	write := func(extra string) {
		t.Helper()
		text := "[http]\nlisten = \"127.0.0.1:0\"\n" + extra + "[rtmp]\nlisten = \"127.0.0.1:0\"\n"
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	logs, addrOf, sigs := serveInProcess(t, cfg, path)
	addrOf("http listening")
	reloaded := func(n int) { t.Helper(); reloadInProcess(t, sigs, logs, n) }
	write("[limits]\nmax_viewers = 5\n")
	reloaded(1)
	if strings.Contains(logs.String(), "need a restart") {
		t.Fatalf("a reload of [limits] warned:\n%s", logs)
	}
	write("write_timeout = \"20s\"\n[pool]\nmax_entries = 10\n")
	reloaded(2)
	const want = `msg="reload: changes that need a restart were not applied" changed="[http], [pool]"`
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", want, logs)
		}
	}
}

// A SIGHUP with a callback URL that no request could be sent to (every
// viewer would get 403) is refused as a whole, its log naming the key
// but not the URL, whose user info may be the callback's credentials.
func TestReloadRefusesAnUnsendableCallback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.toml")
	const base = "[http]\nlisten = \"127.0.0.1:0\"\n[rtmp]\nlisten = \"127.0.0.1:0\"\n"
	if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	logs, addrOf, sigs := serveInProcess(t, cfg, path)
	addrOf("http listening")
	next := base + "[auth]\non_play = \"http://hookuser:hookpass%zz@127.0.0.1/hook\"\n"
	if err := os.WriteFile(path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	sigs <- syscall.SIGHUP
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		out := logs.String()
		if strings.Contains(out, "msg=reloaded") {
			t.Fatalf("the reload was applied:\n%s", out)
		}
		if strings.Contains(out, `msg="reload refused"`) {
			if !strings.Contains(out, "auth.on_play") || strings.Contains(out, "hookpass") {
				t.Fatalf("the refusal should name auth.on_play and not quote its URL:\n%s", out)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", out)
		}
	}
}

// A renewed certificate written over the files the HTTPS listener was
// started with changes no key of the config, but a reload does not apply
// it either: the reload warns that it needs a restart.
func TestReloadWarnsOfRenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeKeyPair(t, dir)
	path := filepath.Join(dir, "gw.toml")
	body := fmt.Sprintf("[http]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\ntls_cert = %q\ntls_key = %q\n[rtmp]\nlisten = \"127.0.0.1:0\"\n", cert, key)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	logs, addrOf, sigs := serveInProcess(t, cfg, path)
	addrOf("https listening")
	reloaded := func(n int) { t.Helper(); reloadInProcess(t, sigs, logs, n) }
	reloaded(1)          // the same certificate
	writeKeyPair(t, dir) // a new key pair over the same files
	reloaded(2)
	const want = `msg="reload: changes that need a restart were not applied" changed="the files of http.tls_cert, http.tls_key"`
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", want, logs)
		}
	}
	// The first reload's warning, had there been one, came before the
	// second reload's line.
	if n := strings.Count(logs.String(), "need a restart"); n != 1 {
		t.Fatalf("%d warnings, want one (the second reload's):\n%s", n, logs)
	}
}

// reloadInProcess sends a serveInProcess's sigs a SIGHUP and waits for its log's
// n-th "reloaded".
func reloadInProcess(t *testing.T, sigs chan<- os.Signal, logs *logLines, n int) {
	t.Helper()
	sigs <- syscall.SIGHUP
	for deadline := time.Now().Add(10 * time.Second); strings.Count(logs.String(), `msg=reloaded`) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("reload %d not logged:\n%s", n, logs)
		}
	}
}

// The embedded origin's connections and those its limits closed at once
// are on /metrics, and a refusal is logged with the setting to look at.
func TestRTMPConnectionsAreReported(t *testing.T) {
	cfg := defaultConfig()
	cfg.HTTP.Listen, cfg.RTMP.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.HTTP.DrainTimeout = 0
	cfg.RTMP.MaxConnections = 1
	logs, addrOf, _ := serveInProcess(t, cfg, "")
	rtmpAddr, httpAddr := addrOf("rtmp listening"), addrOf("http listening")
	open, err := net.Dial("tcp", rtmpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	metric := func(series string) string {
		t.Helper()
		resp, err := http.Get("http://" + httpAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for line := range strings.SplitSeq(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				return v
			}
		}
		return ""
	}
	for deadline := time.Now().Add(5 * time.Second); metric("flvgw_rtmp_connections") != "1"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("flvgw_rtmp_connections %q with one connection open", metric("flvgw_rtmp_connections"))
		}
	}
	over, err := net.Dial("tcp", rtmpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	_ = over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := over.Read(make([]byte, 1)); err == nil || isTimeoutErr(err) {
		t.Fatalf("a connection over rtmp.max_connections: %v, want it closed at once", err)
	}
	if got := metric(`flvgw_rtmp_connections_refused_total{reason="limit_total"}`); got != "1" {
		t.Fatalf("refused by limit_total: %q, want 1", got)
	}
	if !strings.Contains(logs.String(), `msg="rtmp connection refused: limit reached"`) || !strings.Contains(logs.String(), "setting=rtmp.max_connections ") {
		t.Fatalf("no refusal in the log:\n%s", logs)
	}
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
