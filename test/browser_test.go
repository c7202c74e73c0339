package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"flvgw/test/testkit"
)

// browserPage plays FLV_URL with mpegts.js in a <video> element and posts
// what happened to /result: an error, or how far playback got.
const browserPage = `<!doctype html>
<html><body>
<video id="v" muted autoplay playsinline></video>
<script src="/mpegts.js"></script>
<script>
const v = document.getElementById("v");
const res = {supported: mpegts.isSupported(),
  h264: window.MediaSource ? MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E"') : false};
let done = false;
function finish(extra) {
  if (done) return;
  done = true;
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {totalVideoFrames: -1};
  Object.assign(res, extra, {currentTime: v.currentTime, width: v.videoWidth, height: v.videoHeight,
    frames: q.totalVideoFrames});
  fetch("/result", {method: "POST", body: JSON.stringify(res)});
}
try {
  const p = mpegts.createPlayer({type: "flv", isLive: true, url: "FLV_URL"}, {enableWorker: false});
  p.on(mpegts.Events.ERROR, (type, detail, info) => finish({error: type + " " + detail + " " + JSON.stringify(info)}));
  p.attachMediaElement(v);
  p.load();
  const pr = p.play();
  if (pr && pr.catch) pr.catch(e => finish({error: "play: " + e}));
  v.addEventListener("timeupdate", () => { if (v.currentTime >= 3) finish({}); });
  setTimeout(() => finish({error: "timeout"}), 20000);
} catch (e) {
  finish({error: "exception: " + e});
}
</script>
</body></html>`

type browserResult struct {
	Supported   bool    `json:"supported"`
	H264        bool    `json:"h264"`
	Error       string  `json:"error"`
	CurrentTime float64 `json:"currentTime"`
	Width       int     `json:"width"`
	Height      int     `json:"height"`
	Frames      int     `json:"frames"`
}

// A web player plays the gateway's stream: headless Chromium loads
// mpegts.js from a page on another origin (so CORS is exercised for real),
// plays /live/web.flv in a <video> element, and reports 3 s of decoded
// video at the stream's size.
func TestBrowserPlaysWithMpegtsJS(t *testing.T) {
	chromium := testkit.Chromium(t)
	if chromium == "" {
		t.Skip("chromium not installed (apt-get install -y chromium); .ci/run installs it")
	}
	gw := testkit.StartGateway(t, gatewayBin, testkit.BaseConfig(nil))
	const key = "live/web"
	startPublisher(t, gw, key, "sample.flv", testkit.UseFFmpeg(t))
	waitLive(t, gw, key)

	results := make(chan browserResult, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, strings.Replace(browserPage, "FLV_URL", gw.URL("/"+key+".flv"), 1))
	})
	mux.HandleFunc("/mpegts.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, "testdata/mpegts/mpegts.js")
	})
	mux.HandleFunc("/result", func(w http.ResponseWriter, r *http.Request) {
		var res browserResult
		if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
			res.Error = "bad result: " + err.Error()
		}
		select {
		case results <- res:
		default:
		}
	})
	mux.HandleFunc("/favicon.ico", http.NotFound)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	page := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = page.Serve(ln) }()
	t.Cleanup(func() { _ = page.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
		"--disable-dev-shm-usage", "--no-first-run", "--mute-audio",
		"--autoplay-policy=no-user-gesture-required", "--user-data-dir="+t.TempDir(),
		fmt.Sprintf("http://%s/", ln.Addr()))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()

	var res browserResult
	select {
	case res = <-results:
	case <-ctx.Done():
		t.Fatalf("no result from the browser within 60 s\n%s", out.String())
	}
	t.Logf("browser: %+v", res)
	switch {
	case !res.Supported || !res.H264:
		t.Fatalf("this Chromium cannot play H.264 through Media Source Extensions: %+v", res)
	case res.Error != "":
		t.Fatalf("mpegts.js: %s (played %.1f s)\n%s", res.Error, res.CurrentTime, out.String())
	case res.CurrentTime < 3 || res.Frames < 30:
		t.Fatalf("played %.1f s, %d frames; want 3 s", res.CurrentTime, res.Frames)
	case res.Width == 0 || res.Height == 0:
		t.Fatalf("video size %dx%d", res.Width, res.Height)
	}
}
