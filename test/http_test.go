package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"flvgw/test/testkit"
)

// rawRequest sends req as bytes and returns the status line, so that paths
// the Go client would clean reach the gateway as written.
func rawRequest(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestRequestErrors(t *testing.T) {
	// An HTTP-FLV upstream that records what reaches it: no bad request
	// may turn into an upstream URL.
	var mu sync.Mutex
	var upstreamPaths []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upstreamPaths = append(upstreamPaths, r.URL.RawPath+r.URL.Path)
		mu.Unlock()
		http.NotFound(w, r)
	})}
	go func() { _ = rec.Serve(ln) }()
	t.Cleanup(func() { _ = rec.Close() })
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"extra": fmt.Sprintf("[[upstream]]\nname = \"rec\"\nurl = \"http://%s\"\n", ln.Addr()),
	}))
	tests := []struct {
		name, req string
		want      int
	}{
		{"unknown stream", "GET /live/nobody.flv HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"unknown endpoint", "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"three segments", "GET /a/b/c.flv HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"one segment", "GET /test.flv HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"dot segment", "GET /../live/test.flv HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"encoded slash", "GET /live/a%2Fb.flv HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"encoded NUL", "GET /live/a%00b.flv HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"empty stream", "GET /live/.flv HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"overlong key", "GET /live/" + strings.Repeat("a", 200) + ".flv HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"key at its bound", "GET /live/" + strings.Repeat("a", 128) + ".flv HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"key one over", "GET /" + strings.Repeat("a", 129) + "/x.flv HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"bad method", "DELETE /live/test.flv HTTP/1.1\r\nHost: x\r\n\r\n", 405},
		{"huge headers", "GET /live/test.flv HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 16000) + "\r\n\r\n", 431},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got, body := rawRequest(t, gw.HTTPAddr, tc.req)
			if got != tc.want {
				t.Fatalf("status %d (%q), want %d", got, body, tc.want)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("answer took %s", d)
			}
		})
	}
	// Every refusal is logged with its status and counted.
	if !waitFor(2*time.Second, func() bool { return strings.Count(gw.Stderr(), "request refused") >= len(tests) }) {
		t.Fatalf("refusals not logged:\n%s", gw.Stderr())
	}
	for reason, want := range map[string]float64{"bad_path": 9, "bad_method": 1, "header_too_large": 1, "not_found": 2} {
		if n, err := gw.Metric(context.Background(), `flvgw_refusals_total{reason="`+reason+`"}`); err != nil || n != want {
			t.Errorf("refusals %s = %v (%v), want %v", reason, n, err, want)
		}
	}
	// Only the one well-formed request went upstream, as written.
	mu.Lock()
	defer mu.Unlock()
	if len(upstreamPaths) != 2 || upstreamPaths[0] != "/live/nobody.flv" || upstreamPaths[1] != "/live/"+strings.Repeat("a", 128)+".flv" {
		t.Fatalf("upstream saw %q, want only the two well-formed requests", upstreamPaths)
	}
	if resp, err := http.Get(gw.URL("/healthz")); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after bad requests: %v %v", resp, err)
	}
}

func TestHeadOptionsAndOperatorEndpoints(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(nil))
	startPublisher(t, gw, "live/api", "sample.flv", false)
	waitLive(t, gw, "live/api")

	resp, err := http.Head(gw.URL("/live/api.flv"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/x-flv" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("HEAD: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, err = http.Head(gw.URL("/live/none.flv")); err != nil || resp.StatusCode != 404 {
		t.Fatalf("HEAD unknown: %v %v", resp, err)
	}

	req, _ := http.NewRequest(http.MethodOptions, gw.URL("/live/api.flv"), nil)
	req.Header.Set("Origin", "http://player.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 204 || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "GET") ||
		resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("OPTIONS: %d %v", resp.StatusCode, resp.Header)
	}

	// A viewer, then the API and metrics show it.
	leave := make(chan struct{})
	done := make(chan testkit.Play, 1)
	go func() { done <- testkit.PlayFLV(context.Background(), gw.URL("/live/api.flv"), leave) }()
	ctx := context.Background()
	var streams []testkit.StreamInfo
	if !waitFor(5*time.Second, func() bool {
		streams, err = gw.Streams(ctx)
		return err == nil && len(streams) == 1 && streams[0].Subscribers == 1 && streams[0].BytesOut > 0
	}) {
		t.Fatalf("API: %+v %v", streams, err)
	}
	s := streams[0]
	if s.Key != "live/api" || s.State != "live" || !strings.HasPrefix(s.Source, "rtmp-publish://127.0.0.1:") || s.BytesIn == 0 {
		t.Fatalf("API entry: %+v", s)
	}
	var raw map[string][]map[string]any
	body, _ := http.Get(gw.URL("/api/v1/streams"))
	if err := json.NewDecoder(body.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	body.Body.Close()
	for _, field := range []string{"key", "state", "subscribers", "source", "bytes_in", "bytes_out"} {
		if _, ok := raw["streams"][0][field]; !ok {
			t.Fatalf("API entry lacks %q: %v", field, raw)
		}
	}
	for name, want := range map[string]float64{"flvgw_entries": 1, "flvgw_subscribers": 1, "flvgw_upstream_sessions_total": 1,
		`flvgw_entries_by_state{state="live"}`: 1, `flvgw_stream_viewers{stream="live/api"}`: 1} {
		if got, err := gw.Metric(ctx, name); err != nil || got != want {
			t.Fatalf("%s = %v (%v), want %v", name, got, err, want)
		}
	}
	// Every series the README documents is exported.
	mresp, err := http.Get(gw.URL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, name := range []string{"flvgw_entries_idle", "flvgw_viewer_connections", "flvgw_upstream_failures_total",
		"flvgw_reconnects_total", "flvgw_evictions_total", "flvgw_bytes_in_total", "flvgw_bytes_out_total",
		"flvgw_viewer_sessions_total", "flvgw_viewer_skips_total", "flvgw_viewers_dropped_total",
		"flvgw_http_responses_total", "flvgw_time_to_first_byte_seconds_bucket", "flvgw_stream_bytes_in_total",
		"flvgw_stream_bytes_out_total", "flvgw_stream_bitrate_bits", "go_goroutines", "process_resident_memory_bytes",
		"go_cpu_classes_gc_total_cpu_seconds_total"} {
		if !strings.Contains(string(text), "\n"+name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// runtime.gc_percent's default (DefaultGCPercent in cmd/flvgw) is in
	// force unless GOGC overrides it.
	if _, env := os.LookupEnv("GOGC"); !env {
		if got, err := gw.Metric(ctx, "go_gc_gogc_percent"); err != nil || got != 25 {
			t.Errorf("go_gc_gogc_percent = %v (%v), want runtime.gc_percent's default 25", got, err)
		}
	}
	close(leave)
	<-done
}

func TestFFprobeSeesH264AndAAC(t *testing.T) {
	if !testkit.UseFFmpeg(t) {
		t.Skip("ffprobe not installed (apt-get install -y ffmpeg); .ci/run installs it")
	}
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(nil))
	startPublisher(t, gw, "live/probe", "sample.flv", true)
	waitLive(t, gw, "live/probe")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height",
		"-of", "json", gw.URL("/live/probe.flv")).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	var probe struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, s := range probe.Streams {
		seen[s.CodecType] = s.CodecName
	}
	if seen["video"] != "h264" || seen["audio"] != "aac" {
		t.Fatalf("ffprobe saw %v, want h264 video and aac audio\n%s", seen, out)
	}
	// ffmpeg decodes 2 s of it without an error.
	dec := exec.CommandContext(ctx, "ffmpeg", "-v", "error", "-xerror", "-t", "2", "-i", gw.URL("/live/probe.flv"), "-f", "null", "-")
	if out, err := dec.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg decode: %v\n%s", err, out)
	}
}

// A new reader's first video tag is a keyframe preceded by both sequence
// headers, and the FLV header flags follow the tracks.
func TestFirstTagsAndHeaderFlags(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(nil))
	for _, tc := range []struct {
		file         string
		audio, video bool
	}{
		{"sample.flv", true, true},
		{"audio_only.flv", true, false},
		{"video_only.flv", false, true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel() // a key each: the three streams play side by side
			key := "live/" + strings.TrimSuffix(tc.file, ".flv")
			startPublisher(t, gw, key, tc.file, testkit.UseFFmpeg(t))
			waitLive(t, gw, key)
			for join := range 3 { // join at different points of the GOP
				time.Sleep(time.Duration(join*330) * time.Millisecond)
				leave := make(chan struct{})
				time.AfterFunc(1200*time.Millisecond, func() { close(leave) })
				p := testkit.PlayFLV(context.Background(), gw.URL("/"+key+".flv"), leave)
				if p.Status != 200 || p.Stream == nil {
					t.Fatalf("status %d %v", p.Status, p.Err)
				}
				if p.Stream.HasAudio != tc.audio || p.Stream.HasVideo != tc.video {
					t.Fatalf("header flags audio=%v video=%v, want %v %v", p.Stream.HasAudio, p.Stream.HasVideo, tc.audio, tc.video)
				}
				if err := p.Stream.CheckPlayable(); err != nil {
					t.Fatal(err)
				}
				a, v := p.Stream.CountMedia()
				if tc.audio && a == 0 || tc.video && v == 0 {
					t.Fatalf("audio %d video %d tags", a, v)
				}
			}
		})
	}
}

func TestPublishWaitAndBusyKey(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{"http": "publish_wait = \"3s\"\n"}))
	ctx := context.Background()
	// A viewer arriving before its publisher waits and then plays.
	done := make(chan testkit.Play, 1)
	leave := make(chan struct{})
	go func() { done <- testkit.PlayFLV(ctx, gw.URL("/live/late.flv"), leave) }()
	if !waitFor(5*time.Second, func() bool {
		streams, err := gw.Streams(ctx)
		return err == nil && len(streams) == 1 && streams[0].Key == "live/late" &&
			streams[0].State == "waiting" && streams[0].Subscribers == 1
	}) {
		t.Fatalf("the viewer is not waiting for live/late\n%s", gw.Stderr())
	}
	startPublisher(t, gw, "live/late", "sample.flv", false)
	time.AfterFunc(2500*time.Millisecond, func() { close(leave) })
	if p := <-done; p.Status != 200 || p.Stream == nil || p.Stream.CheckPlayable() != nil {
		t.Fatalf("waiting viewer: %d %v", p.Status, p.Err)
	}
	// Nobody publishes: 404 after the wait, not before, not never.
	start := time.Now()
	if p := testkit.PlayFLV(ctx, gw.URL("/live/never.flv"), nil); p.Status != 404 {
		t.Fatalf("never published: %d", p.Status)
	}
	if d := time.Since(start); d < 2500*time.Millisecond || d > 5*time.Second {
		t.Fatalf("404 after %s, want about 3s", d)
	}
	// A second publisher of a live key is refused; the first keeps going.
	waitLive(t, gw, "live/late")
	second := &testkit.Publisher{Addr: gw.RTMPAddr, App: "live", Stream: "late", Tags: loadTags(t, "sample.flv")}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := second.Run(sctx); err == nil {
		t.Fatal("second publisher of a live key was not refused")
	}
	if !strings.Contains(gw.Stderr(), "publish refused") {
		t.Fatalf("refusal not logged:\n%s", gw.Stderr())
	}
	leave2 := make(chan struct{})
	time.AfterFunc(time.Second, func() { close(leave2) })
	if p := testkit.PlayFLV(ctx, gw.URL("/live/late.flv"), leave2); p.Status != 200 || p.Stream.CheckPlayable() != nil {
		t.Fatalf("first publisher disturbed: %d %v", p.Status, p.Err)
	}
}

// SIGTERM ends every viewer's response cleanly and exits 0.
func TestSIGTERMEndsViewersCleanly(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(nil))
	startPublisher(t, gw, "live/term", "sample.flv", false)
	waitLive(t, gw, "live/term")
	const viewers = 10
	plays := make(chan testkit.Play, viewers)
	for range viewers {
		go func() { plays <- testkit.PlayFLV(context.Background(), gw.URL("/live/term.flv"), nil) }()
	}
	if !waitFor(5*time.Second, func() bool {
		n, err := gw.Metric(context.Background(), "flvgw_subscribers")
		return err == nil && n == viewers
	}) {
		t.Fatal("viewers did not attach")
	}
	if err := gw.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range viewers {
		p := <-plays
		if p.Status != 200 || p.Err != nil || p.Stream.CheckPlayable() != nil {
			t.Fatalf("viewer at shutdown: %d %v", p.Status, p.Err)
		}
	}
	select {
	case <-gw.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if err := gw.ExitErr(); err != nil {
		t.Fatalf("exit: %v\n%s", err, gw.Stderr())
	}
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	check := func(config string) (string, error) {
		path := fmt.Sprintf("%s/c%d.toml", dir, time.Now().UnixNano())
		if err := writeFile(path, config); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(gatewayBin, "-check", "-config", path).CombinedOutput()
		return string(out), err
	}
	if out, err := check("[http]\nlisten = \"127.0.0.1:0\"\n"); err != nil {
		t.Fatalf("valid config refused: %v %s", err, out)
	}
	if out, err := exec.Command(gatewayBin, "-check", "-config", "../etc/gw.toml").CombinedOutput(); err != nil {
		t.Fatalf("etc/gw.toml refused: %v %s", err, out)
	}
	for _, tc := range []struct{ config, mention string }{
		{"[http]\nlisten = \"127.0.0.1:0\"\nlisen = 1\n", "http.lisen"},
		{"[pool]\nmax_entrys = 3\n", "pool.max_entrys"},
		{"[bogus]\nx = 1\n", "bogus"},
		{"[pool]\nidle_timeout = \"soon\"\n", "pool.idle_timeout"},
		{"[pool]\nidle_timeout = 30\n", "pool.idle_timeout"},
		{"[pool]\nmax_entries = 0\n", "pool.max_entries"},
		{"[http]\nlisten = \"nonsense\"\n", "http.listen"},
		{"[log]\nlevel = \"loud\"\n", "log.level"},
		{"[pool]\ngop_cache = \"yes\"\n", "gop_cache"},
	} {
		out, err := check(tc.config)
		if err == nil {
			t.Fatalf("%q accepted", tc.config)
		}
		if !strings.Contains(out, tc.mention) {
			t.Fatalf("%q: message %q does not name %s", tc.config, out, tc.mention)
		}
	}
}

// With http.delivery = "stream_writer" (fasthttp's body stream writer, kept
// to measure against the hijacked default) viewers get the same stream:
// ffprobe sees it, every response ends cleanly when the publisher leaves,
// no subscriber is left behind, and an unknown stream is still a 404.
func TestStreamWriterDelivery(t *testing.T) {
	useFFmpeg := testkit.UseFFmpeg(t)
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{"http": "delivery = \"stream_writer\"\n"}))
	const key = "live/sw"
	stop := startPublisher(t, gw, key, "sample.flv", useFFmpeg)
	waitLive(t, gw, key)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if resp, err := http.Get(gw.URL("/live/none.flv")); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown stream: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if useFFmpeg {
		out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
			"-of", "csv=p=0", gw.URL("/"+key+".flv")).Output()
		if err != nil || !strings.Contains(string(out), "h264") || !strings.Contains(string(out), "aac") {
			t.Fatalf("ffprobe: %v\n%s", err, out)
		}
	}

	const readers = 5
	plays := make(chan testkit.Play, readers)
	for range readers {
		go func() { plays <- testkit.PlayFLV(ctx, gw.URL("/"+key+".flv"), nil) }()
	}
	waitSubscribers(t, gw, readers, 10*time.Second, "readers did not all attach")
	time.Sleep(time.Second)
	stopped := time.Now()
	stop()
	for range readers {
		p := <-plays
		if p.Status != http.StatusOK || p.Err != nil {
			t.Fatalf("status %d, %v", p.Status, p.Err)
		}
		if d := p.Ended.Sub(stopped); d > endWithin {
			t.Fatalf("response ended %s after the publisher left, want <= %s", d, endWithin)
		}
		if err := p.Stream.CheckPlayable(); err != nil {
			t.Fatalf("stream not playable: %v", err)
		}
	}
	waitSubscribers(t, gw, 0, 5*time.Second, "subscribers left behind")
}
