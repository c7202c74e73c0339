package testkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Play is one HTTP-FLV viewer's result.
type Play struct {
	Status int
	Stream *Stream
	// Err is nil when the response ended cleanly: the final chunk arrived
	// at a tag boundary. A stream cut inside a tag or without its final
	// chunk is an error.
	Err error
	// Ended is when the response ended.
	Ended time.Time
}

// PlayFLV plays url until the response ends, stop is closed (the viewer
// leaves), or ctx is done.
func PlayFLV(ctx context.Context, url string, stop <-chan struct{}) Play {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if stop != nil {
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Play{Err: err, Ended: time.Now()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Play{Err: err, Ended: time.Now()}
	}
	defer resp.Body.Close()
	p := Play{Status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		p.Ended = time.Now()
		return p
	}
	p.Stream, p.Err = ReadStream(resp.Body)
	p.Ended = time.Now()
	if p.Err == nil && ctx.Err() != nil {
		p.Err = ctx.Err()
	}
	return p
}

// Left reports whether the viewer ended the play itself (stop or ctx).
func (p Play) Left() bool {
	return errors.Is(p.Err, context.Canceled) || errors.Is(p.Err, context.DeadlineExceeded)
}

// HaveFFmpeg reports whether ffmpeg and ffprobe are on PATH.
func HaveFFmpeg() bool {
	_, e1 := exec.LookPath("ffmpeg")
	_, e2 := exec.LookPath("ffprobe")
	return e1 == nil && e2 == nil
}

// PeersRequired reports whether FLVGW_REQUIRE_PEERS=1 is set: CI sets it
// so that a test needing ffmpeg or nginx fails instead of skipping.
func PeersRequired() bool { return os.Getenv("FLVGW_REQUIRE_PEERS") == "1" }

// UseFFmpeg reports whether ffmpeg is there to use; without it a test
// falls back (to the Go publisher) or skips, unless peers are required.
func UseFFmpeg(t testing.TB) bool {
	t.Helper()
	if HaveFFmpeg() {
		return true
	}
	if PeersRequired() {
		t.Fatal("ffmpeg/ffprobe not installed, and FLVGW_REQUIRE_PEERS=1")
	}
	return false
}

// FFmpegPublish starts ffmpeg publishing file (stream copy, real-time
// pace) to rtmpURL; loop repeats it; output holds more output options
// (such as "-output_ts_offset", "20000"). Stop it by cancelling ctx.
func FFmpegPublish(ctx context.Context, file, rtmpURL string, loop bool, output ...string) (*exec.Cmd, error) {
	args := []string{"-hide_banner", "-loglevel", "error", "-re"}
	if loop {
		args = append(args, "-stream_loop", "-1")
	}
	args = append(args, "-i", file, "-c", "copy")
	args = append(args, output...)
	args = append(args, "-f", "flv", rtmpURL)
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ffmpeg: %w", err)
	}
	return cmd, nil
}

// Chromium returns the path of a Chromium binary for the browser tests, or
// "" (after failing the test if peers are required) when there is none.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if PeersRequired() {
		t.Fatal("chromium not installed, and FLVGW_REQUIRE_PEERS=1")
	}
	return ""
}
