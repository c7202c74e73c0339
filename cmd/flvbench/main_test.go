package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// serveClip serves the test clip as chunked HTTP-FLV on loopback; bad
// appends a broken tag.
func serveClip(t *testing.T, bad bool) string {
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
		if bad {
			_, _ = w.Write([]byte{7, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12})
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/live/x.flv"
}

func TestBenchParsesEveryTag(t *testing.T) {
	url := serveClip(t, false)
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
	url := serveClip(t, true)
	o := options{urls: []string{url, "http://127.0.0.1:1/none.flv"}, viewers: 2, duration: time.Second, stall: 5 * time.Second}
	s := bench(context.Background(), o, io.Discard)
	if s.Malformed != 1 || s.Failed != 1 || s.Disconnects != 1 {
		t.Fatalf("summary %+v", s)
	}
}

func TestFlagBounds(t *testing.T) {
	for _, args := range [][]string{{"-n", "0"}, {"-n", "20001"}, {"-d", "2h"}, {"-url", "ftp://x/y.flv"}} {
		if err := run(args, io.Discard, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
