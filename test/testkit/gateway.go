package testkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"flvgw/pool"
)

// BuildGateway builds cmd/flvgw into dir, with the race detector when the
// tests themselves run with it, and returns the binary's path.
func BuildGateway(dir string) (string, error) {
	bin := filepath.Join(dir, "flvgw")
	args := []string{"build", "-o", bin}
	if RaceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "flvgw/cmd/flvgw")
	cmd := exec.Command("go", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// Gateway is a running flvgw process on loopback.
type Gateway struct {
	t        testing.TB
	cmd      *exec.Cmd
	HTTPAddr string
	RTMPAddr string
	mu       sync.Mutex
	stderr   bytes.Buffer
	exited   chan struct{}
	exitErr  error
	killed   bool // an exit status other than 0 is expected (Kill, FailedExitExpected)
	config   string
	// APIToken is sent as a bearer token by Streams.
	APIToken string
}

// ConfigPath is the config file the process runs with (for SIGHUP tests).
func (g *Gateway) ConfigPath() string { return g.config }

// Kill ends the process with SIGKILL (a crash, as far as its peers can
// tell) and waits for it.
func (g *Gateway) Kill() {
	g.killed = true
	_ = g.cmd.Process.Kill()
	<-g.exited
}

// FailedExitExpected makes the test's cleanup accept an exit status other
// than 0, for a test that makes the process fail on purpose.
func (g *Gateway) FailedExitExpected() { g.killed = true }

var listenRE = regexp.MustCompile(`msg="(http|rtmp) listening".* addr=(\S+)`)

// BaseConfig is a test configuration on free loopback ports. sections
// overrides or adds keys per table ("http", "rtmp", "pool", "log",
// "edge"); sections["extra"] is appended as is (for [[upstream]]).
func BaseConfig(sections map[string]string) string {
	def := map[string]string{
		"http":   "listen = \"127.0.0.1:0\"\npprof = true\ndrain_timeout = \"0s\"\n",
		"rtmp":   "listen = \"127.0.0.1:0\"\nread_timeout = \"5s\"\n",
		"pool":   "idle_timeout = \"1s\"\n",
		"log":    "level = \"info\"\n",
		"edge":   "",
		"limits": "",
		"auth":   "",
	}
	var b strings.Builder
	for _, name := range []string{"http", "rtmp", "pool", "log", "edge", "limits", "auth"} {
		fmt.Fprintf(&b, "[%s]\n%s\n", name, mergeKeys(def[name], sections[name]))
	}
	b.WriteString(sections["extra"])
	return b.String()
}

// mergeKeys joins "key = value" lines, over's keys replacing base's.
func mergeKeys(base, over string) string {
	seen := map[string]bool{}
	var out []string
	for line := range strings.SplitSeq(over, "\n") {
		if k, _, ok := strings.Cut(line, "="); ok {
			seen[strings.TrimSpace(k)] = true
			out = append(out, line)
		}
	}
	for line := range strings.SplitSeq(base, "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !seen[strings.TrimSpace(k)] {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// StartGateway runs bin with config and waits until it listens. The
// process is stopped with SIGTERM at test cleanup, which must exit 0 with
// no data race reported.
func StartGateway(t testing.TB, bin, config string) *Gateway {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gw.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &Gateway{t: t, exited: make(chan struct{}), config: path}
	g.cmd = exec.Command(bin, "-config", path)
	pr, pw := io.Pipe()
	g.cmd.Stderr = pw
	g.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=0 exitcode=66")
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 4)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			g.mu.Lock()
			g.stderr.WriteString(line + "\n")
			g.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				addrs <- [2]string{m[1], m[2]}
			}
		}
		_, _ = io.Copy(io.Discard, pr) // a line too long: the process must not block on its stderr
	}()
	go func() {
		g.exitErr = g.cmd.Wait()
		_ = pw.Close()
		<-scanned // Stderr holds every line once Exited is closed
		close(g.exited)
	}()
	deadline := time.After(20 * time.Second)
	// flvgw logs "rtmp listening" (if enabled) before "http listening".
	for g.HTTPAddr == "" {
		select {
		case a := <-addrs:
			if a[0] == "http" {
				g.HTTPAddr = a[1]
			} else {
				g.RTMPAddr = a[1]
			}
		case <-g.exited:
			t.Fatalf("flvgw exited at start: %v\n%s", g.exitErr, g.Stderr())
		case <-deadline:
			t.Fatalf("flvgw did not start\n%s", g.Stderr())
		}
	}
	t.Cleanup(func() {
		if err := g.Stop(10 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return g
}

// PID is the process's id.
func (g *Gateway) PID() int { return g.cmd.Process.Pid }

// Stderr returns what the process logged so far.
func (g *Gateway) Stderr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stderr.String()
}

// Signal sends sig to the process.
func (g *Gateway) Signal(sig os.Signal) error { return g.cmd.Process.Signal(sig) }

// Exited is closed when the process has exited and Stderr holds all it
// wrote.
func (g *Gateway) Exited() <-chan struct{} { return g.exited }

// ExitErr is the process's exit status once Exited is closed.
func (g *Gateway) ExitErr() error { return g.exitErr }

// Stop sends SIGTERM and waits up to timeout for a clean exit. Calling it
// again after the process exited reports the same result.
func (g *Gateway) Stop(timeout time.Duration) error {
	select {
	case <-g.exited:
	default:
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(timeout):
			_ = g.cmd.Process.Kill()
			<-g.exited
			return fmt.Errorf("flvgw did not exit within %s after SIGTERM\n%s", timeout, g.Stderr())
		}
	}
	if strings.Contains(g.Stderr(), "DATA RACE") {
		return fmt.Errorf("flvgw reported a data race:\n%s", g.Stderr())
	}
	if g.exitErr != nil && !g.killed {
		return fmt.Errorf("flvgw exit: %w\n%s", g.exitErr, g.Stderr())
	}
	return nil
}

// URL returns http://HTTPAddr + path.
func (g *Gateway) URL(path string) string { return "http://" + g.HTTPAddr + path }

// StreamInfo is one element of /api/v1/streams.
type StreamInfo = pool.Snapshot

// Streams reads /api/v1/streams.
func (g *Gateway) Streams(ctx context.Context) ([]StreamInfo, error) {
	body, err := getAuth(ctx, g.URL("/api/v1/streams"), g.APIToken)
	if err != nil {
		return nil, err
	}
	var out struct {
		Streams []StreamInfo `json:"streams"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}
	return out.Streams, nil
}

// Metric reads one unlabeled series from /metrics.
func (g *Gateway) Metric(ctx context.Context, name string) (float64, error) {
	body, err := get(ctx, g.URL("/metrics"))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// Goroutines returns the process's goroutine dump (needs http.pprof).
func (g *Gateway) Goroutines(ctx context.Context) string {
	body, err := get(ctx, g.URL("/debug/pprof/goroutine?debug=1"))
	if err != nil {
		return err.Error()
	}
	return string(body)
}

func get(ctx context.Context, url string) ([]byte, error) { return getAuth(ctx, url, "") }

func getAuth(ctx context.Context, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}
