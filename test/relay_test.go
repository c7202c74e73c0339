package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"flvgw/test/testkit"
)

// endWithin is how soon after its publisher leaves every viewer's response
// must have ended cleanly.
const endWithin = 2 * time.Second

// TestPublisherLeavesWithReaders is the reported crash: several HTTP-FLV
// viewers of one stream, then the publisher stops. Every response must end
// cleanly and promptly, the gateway must go on serving, and a new publish
// of the same key must play.
func TestPublisherLeavesWithReaders(t *testing.T) {
	useFFmpeg := testkit.UseFFmpeg(t)
	t.Logf("publisher: ffmpeg=%v", useFFmpeg)
	for _, readers := range []int{2, 50} {
		t.Run(fmt.Sprintf("%d readers", readers), func(t *testing.T) {
			gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(nil))
			const key = "live/crash"
			stop := startPublisher(t, gw, key, "sample.flv", useFFmpeg)
			waitLive(t, gw, key)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			plays := make(chan testkit.Play, readers)
			for range readers {
				go func() { plays <- testkit.PlayFLV(ctx, gw.URL("/"+key+".flv"), nil) }()
			}
			waitSubscribers(t, gw, readers, 10*time.Second, "readers did not all attach")
			time.Sleep(time.Second) // let them play
			stopped := time.Now()
			stop()

			for range readers {
				p := <-plays
				if p.Status != http.StatusOK {
					t.Fatalf("status %d", p.Status)
				}
				if p.Err != nil {
					t.Fatalf("response did not end cleanly: %v", p.Err)
				}
				if d := p.Ended.Sub(stopped); d > endWithin {
					t.Fatalf("response ended %s after the publisher left, want <= %s", d, endWithin)
				}
				if err := p.Stream.CheckPlayable(); err != nil {
					t.Fatalf("stream not playable: %v", err)
				}
				if a, v := p.Stream.CountMedia(); a == 0 || v == 0 {
					t.Fatalf("got %d audio and %d video tags", a, v)
				}
			}
			if resp, err := http.Get(gw.URL("/healthz")); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("healthz after the crash scenario: %v %v", resp, err)
			} else {
				resp.Body.Close()
			}
			// The key plays again with a new publisher.
			startPublisher(t, gw, key, "sample.flv", useFFmpeg)
			waitLive(t, gw, key)
			leave := make(chan struct{})
			time.AfterFunc(1500*time.Millisecond, func() { close(leave) })
			p := testkit.PlayFLV(ctx, gw.URL("/"+key+".flv"), leave)
			if p.Status != http.StatusOK || p.Stream == nil {
				t.Fatalf("republished stream: status %d, %v", p.Status, p.Err)
			}
			if err := p.Stream.CheckPlayable(); err != nil {
				t.Fatalf("republished stream not playable: %v", err)
			}
			if _, v := p.Stream.CountMedia(); v < 10 {
				t.Fatalf("republished stream: %d video tags in 1.5 s", v)
			}
		})
	}
}

// TestPublishCycles repeats the scenario 200 times with random timing:
// readers join before, during and after the publish, some leave at random
// moments, and the publisher leaves at a random moment, while other keys
// cycle concurrently. At the end no entry, subscriber or goroutine remains.
func TestPublishCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("200 publish cycles: not in -short")
	}
	useFFmpeg := testkit.UseFFmpeg(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("publisher: ffmpeg=%v seed=%d", useFFmpeg, seed)
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(map[string]string{
		"http": "publish_wait = \"1s\"\nstart_timeout = \"3s\"\n",
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	baseline := goroutines(t, gw)

	const workers, cycles = 8, 25
	var (
		mu    sync.Mutex
		stats = map[string]int{}
	)
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		key := fmt.Sprintf("live/cycle%d", w)
		wg.Go(func() {
			for c := range cycles {
				if t.Failed() {
					return
				}
				got := runCycle(t, gw, key, rng, useFFmpeg)
				mu.Lock()
				for k, v := range got {
					stats[k] += v
				}
				stats["cycles"]++
				mu.Unlock()
				_ = c
			}
		})
	}
	wg.Wait()
	t.Logf("cycles: %v", stats)
	if t.Failed() {
		return
	}
	if stats["played"] < stats["readers"]/3 {
		t.Fatalf("only %d of %d readers played", stats["played"], stats["readers"])
	}

	// Back to nothing after the idle timeout: no entry, no subscriber, no
	// goroutine beyond the idle baseline.
	if !waitFor(10*time.Second, func() bool {
		s, err := gw.Streams(ctx)
		return err == nil && len(s) == 0
	}) {
		s, _ := gw.Streams(ctx)
		t.Fatalf("entries left after the cycles: %+v", s)
	}
	if n, err := gw.Metric(ctx, "flvgw_subscribers"); err != nil || n != 0 {
		t.Fatalf("subscribers %v (%v), want 0", n, err)
	}
	checkNoLeak(t, gw, baseline)
}

// runCycle runs one publish with random readers on key and checks every
// reader's outcome. It returns counters for the summary.
func runCycle(t *testing.T, gw *testkit.Gateway, key string, rng *rand.Rand, useFFmpeg bool) map[string]int {
	counts := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	readers := 1 + rng.IntN(6)
	joinAt := make([]time.Duration, readers)
	leaveAfter := make([]time.Duration, readers) // 0: stay to the end
	for i := range readers {
		joinAt[i] = time.Duration(rng.IntN(1200)-300) * time.Millisecond
		if rng.IntN(2) == 0 {
			leaveAfter[i] = time.Duration(50+rng.IntN(1500)) * time.Millisecond
		}
	}
	pubLeaveAt := time.Duration(rng.IntN(1500)) * time.Millisecond

	start := time.Now().Add(300 * time.Millisecond) // publisher starts here
	type outcome struct {
		play  testkit.Play
		left  bool
		index int
	}
	out := make(chan outcome, readers)
	for i := range readers {
		go func() {
			time.Sleep(time.Until(start.Add(joinAt[i])))
			var leave chan struct{}
			if leaveAfter[i] > 0 {
				leave = make(chan struct{})
				time.AfterFunc(leaveAfter[i], func() { close(leave) })
			}
			out <- outcome{play: testkit.PlayFLV(ctx, gw.URL("/"+key+".flv"), leave), left: leave != nil, index: i}
		}()
	}
	time.Sleep(time.Until(start))
	stop := startPublisher(t, gw, key, "sample.flv", useFFmpeg)
	time.Sleep(pubLeaveAt)
	stop()
	stopped := time.Now()

	for range readers {
		o := <-out
		counts["readers"]++
		p := o.play
		switch {
		case p.Status == 0 && o.left && p.Left():
			counts["left waiting"]++ // left before the response began
			continue
		case p.Status == http.StatusOK:
		case p.Status == http.StatusNotFound:
			counts["404"]++
			continue
		default:
			t.Errorf("%s reader %d: status %d err %v (join %s, pub leaves %s)", key, o.index, p.Status, p.Err, joinAt[o.index], pubLeaveAt)
			continue
		}
		counts["played"]++
		if p.Left() {
			counts["left"]++
		} else {
			if p.Err != nil {
				t.Errorf("%s reader %d: response did not end cleanly: %v", key, o.index, p.Err)
				continue
			}
			if d := p.Ended.Sub(stopped); d > endWithin {
				t.Errorf("%s reader %d: ended %s after the publisher left", key, o.index, d)
			}
		}
		if p.Stream != nil {
			if err := p.Stream.CheckPlayable(); err != nil {
				t.Errorf("%s reader %d: %v", key, o.index, err)
			}
		}
	}
	return counts
}

// extendedFrom is where the publishes of the extended-timestamp tests
// start, in seconds: past 0xffffff ms (4 h 39 min), so the first header of
// format 0 on each chunk stream carries the extended timestamp field, and
// the format 3 chunks after it repeat it (later headers carry small
// deltas).
const extendedFrom = "20000"

// publishExtended publishes the test clip with ffmpeg, its timestamps
// starting extendedFrom seconds in, until the test ends. ffmpeg's exit
// before then is reported on the returned channel.
func publishExtended(t *testing.T, rtmpURL string) (exited <-chan struct{}) {
	t.Helper()
	if !testkit.UseFFmpeg(t) {
		t.Skip("ffmpeg not installed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd, err := testkit.FFmpegPublish(ctx, "testdata/sample.flv", rtmpURL, true, "-output_ts_offset", extendedFrom)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return done
}

// checkExtended fails the test unless every audio and video frame the
// viewer got has a timestamp past the 24-bit field (ffmpeg sends the
// sequence headers at 0).
func checkExtended(t *testing.T, s *testkit.Stream) {
	t.Helper()
	for i, tag := range s.Tags {
		if (tag.Type == 8 || tag.Type == 9) && !tag.SeqHeader && tag.Timestamp <= 0xffffff {
			t.Fatalf("tag %d (type %d) at %d ms, want past %d", i, tag.Type, tag.Timestamp, 0xffffff)
		}
	}
}

// A publish that starts past 4 h 39 min plays: the embedded origin reads
// the extended timestamp that ffmpeg repeats after a format 3 chunk's
// basic header. go-rtmp v0.0.7 read those 4 bytes as payload, lost the
// framing, and dropped the publisher: the stream never went live.
func TestPublishPastTheExtendedTimestamp(t *testing.T) {
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(nil))
	const key = "live/late"
	exited := publishExtended(t, "rtmp://"+gw.RTMPAddr+"/"+key)
	waitLive(t, gw, key)
	p := playFor(gw.URL("/"+key+".flv"), 3*time.Second)
	checkPlayed(t, p, "viewer")
	checkExtended(t, p.Stream)
	if a, v := p.Stream.CountMedia(); a < 50 || v < 25 {
		t.Fatalf("3 s of play gave %d audio and %d video tags", a, v)
	}
	select {
	case <-exited:
		t.Fatalf("the origin dropped the publisher\n%s", gw.Stderr())
	default:
	}
	if strings.Contains(gw.Stderr(), "level=WARN") {
		t.Fatalf("warnings logged:\n%s", gw.Stderr())
	}
}
