package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// serveClip serves the test clip as chunked HTTP-FLV on loopback, then
// tail, then nothing while the connection lasts.
func serveClip(t *testing.T, tail []byte) string {
	t.Helper()
	clip, err := os.ReadFile("../../test/testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(clip[:len(clip)/2])
		w.(http.Flusher).Flush()
		_, _ = w.Write(clip[len(clip)/2:])
		_, _ = w.Write(tail)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/live/x.flv"
}

func TestBenchParsesEveryTag(t *testing.T) {
	url := serveClip(t, nil)
	// CPU spent before the run, which its figure must leave out.
	for spin := time.Now(); time.Since(spin) < 200*time.Millisecond; {
	}
	o := options{urls: []string{url}, viewers: 3, duration: 1500 * time.Millisecond, stall: 5 * time.Second}
	c0 := ownCPUSeconds()
	s := bench(context.Background(), o, io.Discard)
	c1 := ownCPUSeconds()
	if s.Connected != 3 || s.Failed != 0 || s.Malformed != 0 || s.OutOfOrder != 0 || s.Disconnects != 0 {
		t.Fatalf("summary %+v", s)
	}
	// The clip is 10 s of H.264+AAC: about 250 video and 430 audio tags each.
	if s.Tags < 3*600 || s.TTFKms[0] <= 0 {
		t.Fatalf("parsed %d tags, first keyframe %v", s.Tags, s.TTFKms)
	}
	// The run's own CPU, where the system reports it: some, and no more
	// than the process spent from its start to its end.
	if c1 > 0 && (s.CPUSeconds <= 0 || s.CPUSeconds > c1-c0) {
		t.Fatalf("flvbench's own CPU %v s; the process spent %v s over the run", s.CPUSeconds, c1-c0)
	}
}

func TestBenchCountsMalformedAndRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, err string
		tail      []byte
	}{
		{"unknown tag type", "malformed tag type 7 size 1", []byte{7, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12}},
		{"PreviousTagSize", "bad PreviousTagSize", []byte{8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xaf, 0, 0, 0, 99}},
	} {
		url := serveClip(t, tc.tail)
		o := options{urls: []string{url, "http://127.0.0.1:1/none.flv"}, viewers: 2, duration: time.Second, stall: 5 * time.Second}
		s := bench(context.Background(), o, io.Discard)
		if s.Malformed != 1 || s.Failed != 1 || s.Disconnects != 1 || !slices.ContainsFunc(s.Errors, func(e string) bool { return strings.HasSuffix(e, " "+tc.err) }) {
			t.Fatalf("%s: summary %+v", tc.name, s)
		}
	}
}

// A stream that freezes and stays frozen until the run ends is a stall
// too, though no later tag closes its gap.
func TestBenchCountsAStallOpenAtTheEnd(t *testing.T) {
	url := serveClip(t, nil) // the clip at once, then nothing
	o := options{urls: []string{url}, viewers: 2, duration: 1500 * time.Millisecond, stall: 500 * time.Millisecond}
	s := bench(context.Background(), o, io.Discard)
	if s.Connected != 2 || s.Disconnects != 0 || s.Stalls != 2 || s.LongestGapMs < 1000 {
		t.Fatalf("summary %+v", s)
	}
}

// Percentiles are by nearest rank: p99 of 1..100 is 99, not the maximum.
func TestPercentiles(t *testing.T) {
	v := make([]float64, 100)
	for i := range v {
		v[len(v)-1-i] = float64(i + 1)
	}
	if got := percentiles(v); got != [3]float64{50, 95, 99} {
		t.Fatalf("p50/p95/p99 of 1..100: %v", got)
	}
	if got := percentiles([]float64{7}); got != [3]float64{7, 7, 7} {
		t.Fatalf("of one value: %v", got)
	}
}

func TestFlagBounds(t *testing.T) {
	for _, args := range [][]string{{"-n", "0"}, {"-n", "20001"}, {"-d", "2h"}, {"-url", "ftp://x/y.flv"},
		// A URL without -url, which would stop the flags there and
		// leave the default URL to run against.
		{"-d", "1ms", "-progress", "0", "http://127.0.0.1:1/live/x.flv", "-n", "1"},
		// A ramp or stall threshold that means nothing.
		{"-url", "http://127.0.0.1:1/x.flv", "-n", "1", "-d", "1ms", "-progress", "0", "-ramp", "-10"},
		{"-url", "http://127.0.0.1:1/x.flv", "-n", "1", "-d", "1ms", "-progress", "0", "-ramp", "NaN"},
		{"-url", "http://127.0.0.1:1/x.flv", "-n", "2", "-d", "1ms", "-progress", "0", "-ramp", "1e-300"},
		{"-url", "http://127.0.0.1:1/x.flv", "-n", "1", "-d", "1ms", "-progress", "0", "-stall", "0s"}} {
		if err := run(args, io.Discard, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// A server that answers its headers and then sends nothing stalls its
// viewer: no FLV header came, but none came malformed either. One that
// answers and closes disconnects it.
func TestBenchCountsAServerSilentAfterItsHeadersAsAStall(t *testing.T) {
	url := fakeServer(t, func(c net.Conn, _ *http.Request) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
		untilClosed(c)
	})
	o := options{urls: []string{url + "/live/x.flv"}, viewers: 1, duration: 2 * time.Second, stall: 300 * time.Millisecond}
	s := bench(context.Background(), o, io.Discard)
	if s.Connected != 1 || s.Malformed != 0 || s.Disconnects != 0 || s.Stalls != 1 || s.LongestGapMs <= 300 {
		t.Fatalf("silent: summary %+v", s)
	}

	url = fakeServer(t, func(c net.Conn, _ *http.Request) {
		_, _ = io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
	})
	o.urls = []string{url + "/live/x.flv"}
	s = bench(context.Background(), o, io.Discard)
	if s.Connected != 1 || s.Malformed != 0 || s.Disconnects != 1 || len(s.Errors) != 1 || !strings.Contains(s.Errors[0], "EOF") {
		t.Fatalf("closed: summary %+v", s)
	}
}

// A server that redirects to its stream (as SRS and CDNs do) is followed,
// to a path on itself or to another server, and the viewer plays.
func TestBenchFollowsRedirects(t *testing.T) {
	other := fakeServer(t, serveFLV)
	url := ""
	url = fakeServer(t, func(c net.Conn, req *http.Request) {
		switch req.URL.Path {
		case "/live/here.flv":
			_, _ = io.WriteString(c, "HTTP/1.1 302 Found\r\nLocation: /real/x.flv?token=1\r\nContent-Length: 0\r\n\r\n")
		case "/live/there.flv":
			_, _ = io.WriteString(c, "HTTP/1.1 307 Temporary Redirect\r\nlocation: "+other+"/real/y.flv\r\nContent-Length: 0\r\n\r\n")
		case "/live/loop.flv":
			_, _ = io.WriteString(c, "HTTP/1.1 302 Found\r\nLocation: "+url+"/live/loop.flv\r\nContent-Length: 0\r\n\r\n")
		case "/real/x.flv":
			serveFLV(c, req)
		default:
			_, _ = io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
		}
	})
	o := options{urls: []string{url + "/live/here.flv", url + "/live/there.flv"}, viewers: 2, duration: time.Second, stall: 5 * time.Second}
	s := bench(context.Background(), o, io.Discard)
	if s.Connected != 2 || s.Failed != 0 || s.Tags != 4 || s.TTFKms[0] <= 0 {
		t.Fatalf("summary %+v", s)
	}
	// A redirect that loops ends in a failure that says so.
	o = options{urls: []string{url + "/live/loop.flv"}, viewers: 1, duration: time.Second, stall: 5 * time.Second}
	s = bench(context.Background(), o, io.Discard)
	if s.Connected != 0 || s.Failed != 1 || len(s.Errors) != 1 || !strings.Contains(s.Errors[0], "redirects") {
		t.Fatalf("loop: summary %+v", s)
	}
}

// A URL without a port is on port 80, as in any HTTP client.
func TestBenchDialsPort80WhenTheURLHasNoPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:80")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.1:80 here: %v", err)
	}
	hosts := make(chan string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts <- r.Host
		_, _ = w.Write(flvHead)
		_, _ = w.Write(flvTag(9, 0, avcKey))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	o := options{urls: []string{"http://127.0.0.1/live/x.flv"}, viewers: 1, duration: time.Second, stall: 5 * time.Second}
	s := bench(context.Background(), o, io.Discard)
	if s.Connected != 1 || s.Tags != 1 {
		t.Fatalf("summary %+v", s)
	}
	if h := <-hosts; h != "127.0.0.1" {
		t.Fatalf("Host: %q", h)
	}
}

// Viewers the ramp had not started when the run ended are not failures.
func TestBenchDoesNotCountUnstartedViewersAsFailed(t *testing.T) {
	url := fakeServer(t, serveFLV)
	// One viewer every 10 s, for 1.5 s: one starts.
	o := options{urls: []string{url + "/live/x.flv"}, viewers: 3, ramp: 0.1, duration: 1500 * time.Millisecond, stall: 5 * time.Second}
	s := bench(context.Background(), o, io.Discard)
	if s.Viewers != 3 || s.Started != 1 || s.Connected != 1 || s.Failed != 0 {
		t.Fatalf("summary %+v", s)
	}
	var out strings.Builder
	s.print(&out)
	if want := "3 (1 started: 1 connected, 0 failed)"; !strings.Contains(out.String(), want) {
		t.Fatalf("summary printed without %q:\n%s", want, out.String())
	}
}

// A body with a Content-Length ends there, though the server keeps the
// connection open for another request: the stream ended.
func TestBenchEndsABodyAtItsContentLength(t *testing.T) {
	body := slices.Concat(flvHead, flvTag(9, 0, avcKey), flvTag(8, 0, aacFrame))
	url := fakeServer(t, func(c net.Conn, _ *http.Request) {
		_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\ncontent-length: %d\r\n\r\n", len(body))
		_, _ = c.Write(body)
		untilClosed(c)
	})
	o := options{urls: []string{url + "/live/x.flv"}, viewers: 1, duration: 1500 * time.Millisecond, stall: 500 * time.Millisecond}
	s := bench(context.Background(), o, io.Discard)
	if s.Connected != 1 || s.Tags != 2 || s.Malformed != 0 || s.Disconnects != 1 || s.Stalls != 0 {
		t.Fatalf("summary %+v", s)
	}
}

// A server that ends the stream between two tags (the last chunk of a
// chunked body, the close of a close-delimited one, the end of a
// Content-Length) disconnects its viewer cleanly; one that stops inside
// a tag, or closes a chunked or Content-Length body short, disconnects it
// with an error, and the summary tells the two apart.
func TestBenchTellsACleanEndFromACutOne(t *testing.T) {
	full := slices.Concat(flvHead, flvTag(9, 0, avcKey), flvTag(8, 0, aacFrame))
	cut := slices.Concat(full, flvTag(9, 40, avcInter)[:15])
	chunk := func(b []byte) string { return fmt.Sprintf("%x\r\n%s\r\n", len(b), b) }
	for _, tc := range []struct {
		name, resp, err string
	}{
		{"close-delimited, clean", "HTTP/1.0 200 OK\r\n\r\n" + string(full), "stream ended"},
		{"close-delimited, inside a tag", "HTTP/1.0 200 OK\r\n\r\n" + string(cut), "unexpected EOF"},
		{"chunked, clean", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(full) + "0\r\n\r\n", "stream ended"},
		{"chunked, no last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(full), "unexpected EOF"},
		{"chunked, inside a chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(full) + "100\r\n" + string(cut[len(full):]), "unexpected EOF"},
		{"Content-Length, short", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(full)+100, full), "unexpected EOF"},
	} {
		url := fakeServer(t, func(c net.Conn, _ *http.Request) { _, _ = io.WriteString(c, tc.resp) })
		s := benchOneViewer(url)
		if s.Connected != 1 || s.Tags != 2 || s.Malformed != 0 || s.Disconnects != 1 || len(s.Errors) != 1 || !strings.Contains(s.Errors[0], tc.err) {
			t.Errorf("%s: summary %+v", tc.name, s)
		}
	}
}

// The first keyframe of HEVC, by the enhanced-RTMP header (as flvgw
// relays it) or by the legacy codec id 12, is found, and a sequence
// header is not one.
func TestBenchFindsHEVCKeyframes(t *testing.T) {
	const wait = 300 * time.Millisecond
	for _, tc := range []struct {
		name          string
		seq, key, gop []byte
	}{
		{"AVC", []byte{0x17, 0, 0, 0, 0, 1}, avcKey, avcInter},
		{"enhanced RTMP hvc1", []byte{0x90, 'h', 'v', 'c', '1', 1}, []byte{0x91, 'h', 'v', 'c', '1', 0, 0, 0, 9}, []byte{0xa1, 'h', 'v', 'c', '1', 0, 0, 0, 9}},
		{"enhanced RTMP hvc1, no composition time", []byte{0x90, 'h', 'v', 'c', '1', 1}, []byte{0x93, 'h', 'v', 'c', '1', 9}, []byte{0xa3, 'h', 'v', 'c', '1', 9}},
		{"legacy HEVC id 12", []byte{0x1c, 0, 0, 0, 0, 1}, []byte{0x1c, 1, 0, 0, 0, 9}, []byte{0x2c, 1, 0, 0, 0, 9}},
	} {
		url := fakeServer(t, func(c net.Conn, _ *http.Request) {
			_, _ = io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\n")
			_, _ = c.Write(slices.Concat(flvHead, flvTag(9, 0, tc.seq), flvTag(8, 0, aacFrame), flvTag(9, 40, tc.gop)))
			time.Sleep(wait)
			_, _ = c.Write(flvTag(9, 80, tc.key))
			untilClosed(c)
		})
		o := options{urls: []string{url + "/live/x.flv"}, viewers: 1, duration: wait + 2*time.Second, stall: 5 * time.Second}
		s := bench(context.Background(), o, io.Discard)
		if s.Connected != 1 || s.Tags != 4 || s.TTFKms[0] < float64(wait.Milliseconds()) {
			t.Errorf("%s: summary %+v", tc.name, s)
		}
	}
}

// A viewer whose response head never ends (a status line, then nothing
// until the run ends) failed: it never connected to a stream.
func TestBenchCountsAnUnfinishedResponseHeadAsFailed(t *testing.T) {
	url := fakeServer(t, func(c net.Conn, _ *http.Request) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n")
		untilClosed(c)
	})
	o := options{urls: []string{url + "/live/x.flv"}, viewers: 1, duration: time.Second, stall: 5 * time.Second}
	s := bench(context.Background(), o, io.Discard)
	if s.Connected != 0 || s.Failed != 1 || len(s.Errors) != 1 || !strings.Contains(s.Errors[0], "no response before the run ended") {
		t.Fatalf("summary %+v", s)
	}
}

// The summary says how many connected viewers got no keyframe (they are
// not in the first-keyframe percentiles), and lists the most frequent
// kinds of error first, the same ones in every run, with how many more
// kinds there were.
func TestSummaryCountsViewersWithoutKeyframeAndRanksErrors(t *testing.T) {
	var rs []viewerResult
	for kind := range 12 {
		for range kind + 1 { // error kind k occurs k+1 times
			rs = append(rs, viewerResult{started: true, status: 503, err: fmt.Errorf("error %02d", kind)})
		}
	}
	rs = append(rs,
		viewerResult{started: true, status: 200, ttfk: 40 * time.Millisecond},
		viewerResult{started: true, status: 200}, // never a keyframe
	)
	s := summarize(rs, time.Second, len(rs))
	if s.NoKeyframe != 1 || s.TTFKms != [3]float64{40, 40, 40} {
		t.Fatalf("no keyframe %d, first keyframe %v; want 1 and 40 ms", s.NoKeyframe, s.TTFKms)
	}
	want := []string{"12x error 11", "11x error 10", "10x error 09", "9x error 08", "8x error 07",
		"7x error 06", "6x error 05", "5x error 04", "4x error 03", "3x error 02", "and 2 kinds of error more"}
	if !slices.Equal(s.Errors, want) {
		t.Fatalf("errors %q,\nwant %q", s.Errors, want)
	}
}

// A response head without end (an endless header line, or header lines
// without end) fails its viewer at a bound instead of growing flvbench's
// memory until the run ends.
func TestBenchBoundsTheResponseHead(t *testing.T) {
	for name, line := range map[string]string{
		"endless line":  "X-Pad: " + strings.Repeat("a", 1<<20),
		"endless lines": strings.Repeat("X-Pad: aaaaaaaaaaaaaaaa\r\n", 1<<15),
	} {
		t.Run(name, func(t *testing.T) {
			url := fakeServer(t, func(c net.Conn, _ *http.Request) {
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n"+line)
				untilClosed(c)
			})
			s := benchOneViewer(url)
			if s.Failed != 1 || len(s.Errors) != 1 || !strings.Contains(s.Errors[0], errHeadTooLong.Error()) {
				t.Fatalf("summary %+v", s)
			}
		})
	}
}

// A chunk whose size line says less than it carries puts the body out of
// frame: the viewer ends with that error, not with tags read from the
// middle of a chunk as malformed ones.
func TestBenchChecksChunkFraming(t *testing.T) {
	full := slices.Concat(flvHead, flvTag(9, 0, avcKey), flvTag(8, 0, aacFrame))
	resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(full)-4, full)
	url := fakeServer(t, func(c net.Conn, _ *http.Request) {
		_, _ = io.WriteString(c, resp)
		untilClosed(c)
	})
	s := benchOneViewer(url)
	if s.Disconnects != 1 || len(s.Errors) != 1 || !strings.Contains(s.Errors[0], errChunkFraming.Error()) {
		t.Fatalf("summary %+v", s)
	}
}

// -h prints the usage and exits 0, as a help request is no failure; a bad
// flag exits 1 with the error.
func TestHelpExitsZero(t *testing.T) {
	var stderr strings.Builder
	if code := exitCode(run([]string{"-h"}, io.Discard, &stderr), &stderr); code != 0 || !strings.Contains(stderr.String(), "-url") {
		t.Fatalf("-h: exit %d, printed %q; want 0 and the usage", code, stderr.String())
	}
	stderr.Reset()
	if code := exitCode(run([]string{"-n", "0"}, io.Discard, &stderr), &stderr); code != 1 || !strings.Contains(stderr.String(), "flvbench:") {
		t.Fatalf("-n 0: exit %d, printed %q; want 1 and the error", code, stderr.String())
	}
}

// benchOneViewer runs one viewer of url's /live/x.flv for up to 5 s, with
// a stall bound of 5 s, and returns the summary.
func benchOneViewer(url string) Summary {
	o := options{urls: []string{url + "/live/x.flv"}, viewers: 1, duration: 5 * time.Second, stall: 5 * time.Second}
	return bench(context.Background(), o, io.Discard)
}
