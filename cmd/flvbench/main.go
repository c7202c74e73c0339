// Command flvbench is a load tool for HTTP-FLV servers (flvgw or any
// other): N concurrent viewers of one or more URLs, ramped up at a given
// rate, for a bounded time. It parses every FLV tag it receives and
// reports time to first byte and to first keyframe (p50/p95/p99), received
// bitrate, stalls (no tag for over -stall), disconnects, malformed tags and
// tags out of timestamp order.
//
//	flvbench -url http://127.0.0.1:8080/live/test.flv -n 1000 -ramp 500 -d 60s
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Bounds on what one run may ask for.
const (
	maxViewers  = 20000
	maxDuration = time.Hour
)

func main() {
	os.Exit(exitCode(run(os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// exitCode is flvbench's exit status for run's error: 0 for none and for
// -h (the usage is printed), 1 with the error printed otherwise.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintln(stderr, "flvbench:", err)
		return 1
	}
}

type options struct {
	urls     []string
	viewers  int
	ramp     float64 // viewers per second; 0: all at once
	duration time.Duration
	stall    time.Duration
	progress time.Duration
	json     bool
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("flvbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	urls := fs.String("url", "http://127.0.0.1:8080/live/test.flv", "HTTP-FLV URL(s), comma-separated; viewers are spread over them")
	o := options{}
	fs.IntVar(&o.viewers, "n", 100, fmt.Sprintf("concurrent viewers (at most %d)", maxViewers))
	fs.Float64Var(&o.ramp, "ramp", 0, "viewers started per second (0: all at once)")
	fs.DurationVar(&o.duration, "d", 30*time.Second, fmt.Sprintf("how long each run lasts (at most %s)", maxDuration))
	fs.DurationVar(&o.stall, "stall", time.Second, "a gap between tags longer than this is a stall")
	fs.DurationVar(&o.progress, "progress", 5*time.Second, "progress line interval (0: none)")
	fs.BoolVar(&o.json, "json", false, "print the summary as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write flvbench's own CPU profile to this file (is the load tool the bottleneck?)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags after it were not read): give URLs with -url", fs.Arg(0))
	}
	o.urls = strings.Split(*urls, ",")
	for _, u := range o.urls {
		if p, err := url.Parse(u); err != nil || p.Scheme != "http" || p.Host == "" {
			return fmt.Errorf("-url %q: want http://host:port/app/stream.flv", u)
		}
	}
	switch {
	case o.viewers < 1 || o.viewers > maxViewers:
		return fmt.Errorf("-n must be 1..%d", maxViewers)
	case o.duration <= 0 || o.duration > maxDuration:
		return fmt.Errorf("-d must be in (0, %s]", maxDuration)
	case o.ramp != 0 && !(o.ramp >= 1/maxDuration.Seconds()): // NaN too
		return fmt.Errorf("-ramp must be 0 (all at once) or at least one viewer per %s", maxDuration)
	case o.stall <= 0:
		return errors.New("-stall must be more than 0")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res := bench(ctx, o, stderr)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	res.print(stdout)
	return nil
}

// viewerResult is what one viewer saw.
type viewerResult struct {
	started      bool // false: the run ended before the ramp started it
	status       int
	err          error
	ttfb         time.Duration // request to first body byte
	ttfk         time.Duration // request to first video keyframe (or first audio for audio-only)
	bytes        int64
	tags         int64
	malformed    int64
	stalls       int64
	joinStalls   int64         // stalls that began within joinWindow of the request
	longestGap   time.Duration // longest time between two tags (or the FLV header and the first, or the last and the run's end)
	outOfOrder   int64
	disconnected bool // ended before the run did
}

// gap records a time of d without a tag, begun at since after the request,
// and counts it as a stall if longer than stall.
func (r *viewerResult) gap(d, since, stall time.Duration, prog *progress) {
	r.longestGap = max(r.longestGap, d)
	if d > stall {
		r.stalls++
		prog.stalls.Add(1)
		if since < joinWindow {
			r.joinStalls++
		}
	}
}

// joinWindow is how long after its request a viewer counts as joining: a
// stall that begins within it is also counted apart (stalls_joining), to
// tell a start that falters from a stream that does.
const joinWindow = 5 * time.Second

// Summary is the report of a run.
type Summary struct {
	Viewers       int        `json:"viewers"`
	Started       int        `json:"started"` // viewers the ramp started before the run ended
	Connected     int        `json:"connected"`
	Failed        int        `json:"failed"`
	DurationSec   float64    `json:"duration_seconds"`
	TTFBms        [3]float64 `json:"ttfb_ms_p50_p95_p99"`
	TTFKms        [3]float64 `json:"first_keyframe_ms_p50_p95_p99"`
	NoKeyframe    int        `json:"no_keyframe"` // connected viewers that got no keyframe (left out of TTFKms)
	MbpsPerViewer float64    `json:"mbps_per_viewer"`
	MbpsTotal     float64    `json:"mbps_total"`
	BytesTotal    int64      `json:"bytes_total"`
	Tags          int64      `json:"tags"`
	Malformed     int64      `json:"malformed"`
	Stalls        int64      `json:"stalls"`
	JoinStalls    int64      `json:"stalls_joining"`
	LongestGapMs  float64    `json:"longest_gap_ms"`
	Disconnects   int        `json:"disconnects"`
	OutOfOrder    int64      `json:"out_of_order"`
	CPUSeconds    float64    `json:"cpu_seconds"` // flvbench's own user+system CPU over the run (0: not known)
	Errors        []string   `json:"errors,omitempty"`
}

func (s Summary) print(w io.Writer) {
	fmt.Fprintf(w, "%-28s %d (%d started: %d connected, %d failed)\n", "viewers", s.Viewers, s.Started, s.Connected, s.Failed)
	fmt.Fprintf(w, "%-28s %.1f s\n", "duration", s.DurationSec)
	fmt.Fprintf(w, "%-28s %.1f / %.1f / %.1f ms\n", "time to first byte p50/95/99", s.TTFBms[0], s.TTFBms[1], s.TTFBms[2])
	fmt.Fprintf(w, "%-28s %.1f / %.1f / %.1f ms (%d viewers got none)\n", "first keyframe p50/95/99", s.TTFKms[0], s.TTFKms[1], s.TTFKms[2], s.NoKeyframe)
	fmt.Fprintf(w, "%-28s %.3f Mbps per viewer, %.1f Mbps in all\n", "received", s.MbpsPerViewer, s.MbpsTotal)
	fmt.Fprintf(w, "%-28s %d tags, %d bytes\n", "parsed", s.Tags, s.BytesTotal)
	fmt.Fprintf(w, "%-28s %d\n", "malformed tags", s.Malformed)
	fmt.Fprintf(w, "%-28s %d (%d within %s of the request; longest gap between tags %.0f ms)\n",
		"stalls", s.Stalls, s.JoinStalls, joinWindow, s.LongestGapMs)
	fmt.Fprintf(w, "%-28s %d\n", "disconnects", s.Disconnects)
	fmt.Fprintf(w, "%-28s %d\n", "out of timestamp order", s.OutOfOrder)
	if s.CPUSeconds > 0 {
		fmt.Fprintf(w, "%-28s %.2f s (%.2f cores)\n", "flvbench's own CPU", s.CPUSeconds, s.CPUSeconds/max(s.DurationSec, 1e-9))
	} else {
		fmt.Fprintf(w, "%-28s not known on this system\n", "flvbench's own CPU")
	}
	for _, e := range s.Errors {
		fmt.Fprintf(w, "%-28s %s\n", "error", e)
	}
}

// live counters for the progress line.
type progress struct {
	connected atomic.Int64
	bytes     atomic.Int64
	stalls    atomic.Int64
	failed    atomic.Int64
}

func bench(ctx context.Context, o options, stderr io.Writer) Summary {
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	start, cpu0 := time.Now(), ownCPUSeconds()
	var prog progress
	results := make([]viewerResult, o.viewers)
	var wg sync.WaitGroup
	if o.progress > 0 {
		go func() {
			t := time.NewTicker(o.progress)
			defer t.Stop()
			var last int64
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					b := prog.bytes.Load()
					fmt.Fprintf(stderr, "[%5.0fs] viewers %d/%d  %.1f Mbps  stalls %d  failed %d\n",
						time.Since(start).Seconds(), prog.connected.Load(), o.viewers,
						float64(b-last)*8/o.progress.Seconds()/1e6, prog.stalls.Load(), prog.failed.Load())
					last = b
				}
			}
		}()
	}
	for i := range o.viewers {
		if o.ramp > 0 && i > 0 {
			due := start.Add(time.Duration(float64(i) / o.ramp * float64(time.Second)))
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(due)):
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = view(ctx, o.urls[i%len(o.urls)], o.stall, &prog)
		}()
	}
	wg.Wait()
	s := summarize(results, time.Since(start), o.viewers)
	s.CPUSeconds = ownCPUSeconds() - cpu0
	return s
}

// errEnded is a body that ended between two tags: the server ended the
// stream, as against cutting it.
var errEnded = errors.New("stream ended by the server between two tags")

// maxRedirects is how many redirects a viewer follows to its stream.
const maxRedirects = 5

// view plays u until ctx ends, parsing every tag.
func view(ctx context.Context, rawURL string, stall time.Duration, prog *progress) (r viewerResult) {
	start := time.Now()
	r.started = true
	u, _ := url.Parse(rawURL)
	var resp response
	for redirects := 0; ; redirects++ {
		var err error
		resp, err = get(ctx, u)
		if err != nil && ctx.Err() != nil {
			// The run ended while the viewer waited for its response
			// (the error would be the closed connection's, one per port).
			err = fmt.Errorf("no response before the run ended: %w", ctx.Err())
		}
		if err == nil { // a whole response head: its status decides
			r.status = resp.status
		}
		if err == nil && resp.status != 200 {
			resp.close()
			err = fmt.Errorf("HTTP %d", resp.status)
			switch resp.status {
			case 301, 302, 303, 307, 308:
				if resp.location == "" {
					break
				}
				next, perr := u.Parse(resp.location)
				switch {
				case perr != nil || next.Scheme != "http" || next.Host == "":
					err = fmt.Errorf("%w to %q: flvbench follows http:// only", err, resp.location)
				case redirects == maxRedirects:
					err = fmt.Errorf("%w after %d redirects", err, maxRedirects)
				default:
					u = next
					continue
				}
			}
		}
		if err != nil {
			r.err = err
			prog.failed.Add(1)
			return r
		}
		break
	}
	defer resp.close()
	body := resp.body
	prog.connected.Add(1)
	defer prog.connected.Add(-1)
	fr := bufio.NewReaderSize(body, 16*1024)
	// The time without a tag runs from the response head: a server that
	// answers and then sends nothing stalls its viewer too.
	lastTag := time.Now()
	defer func() {
		if ctx.Err() != nil {
			// The run ended: a gap still open then (a stream that froze
			// and stayed frozen) counts as much as one a tag closed. It
			// ends at the run's end, not when this goroutine saw it.
			end := time.Now()
			if d, ok := ctx.Deadline(); ok && d.Before(end) {
				end = d
			}
			r.gap(max(0, end.Sub(lastTag)), lastTag.Sub(start), stall, prog)
		}
	}()
	if _, err := fr.Peek(1); err == nil {
		r.ttfb = time.Since(start)
	}
	var hdr [13]byte
	if n, err := io.ReadFull(fr, hdr[:]); err != nil {
		if ctx.Err() == nil { // the server ended the body before a header
			r.disconnected = true
			r.err = fmt.Errorf("FLV header: %d of 13 bytes: %w", n, err)
		}
		return r
	}
	if string(hdr[:3]) != "FLV" {
		r.malformed++
		r.err = errors.New("no FLV header")
		r.disconnected = ctx.Err() == nil
		return r
	}
	r.bytes += 13
	// ended records why the body ended before the run did.
	ended := func(err error) viewerResult {
		if ctx.Err() == nil {
			r.disconnected = true
			r.err = err
		}
		return r
	}
	var th [11]byte
	var last [2]uint32
	var seen [2]bool
	for {
		if n, err := io.ReadFull(fr, th[:]); err != nil {
			if n == 0 && errors.Is(err, io.EOF) {
				return ended(errEnded)
			}
			return ended(fmt.Errorf("tag header: %w", cut(err)))
		}
		typ := th[0]
		size := int(th[1])<<16 | int(th[2])<<8 | int(th[3])
		ts := uint32(th[4])<<16 | uint32(th[5])<<8 | uint32(th[6]) | uint32(th[7])<<24
		if (typ != 8 && typ != 9 && typ != 18) || size == 0 {
			r.malformed++
			r.err = fmt.Errorf("malformed tag type %d size %d", typ, size)
			r.disconnected = ctx.Err() == nil
			return r
		}
		first, err := fr.Peek(2)
		if err != nil {
			return ended(fmt.Errorf("tag body: %w", cut(err)))
		}
		key := typ == 9 && keyframe(first[0], first[1])
		if r.ttfk == 0 && (key || (typ == 8 && !(first[0]>>4 == 10 && first[1] == 0) && !seen[1])) {
			if key || time.Since(start) > 2*time.Second { // audio-only streams
				r.ttfk = time.Since(start)
			}
		}
		if _, err := fr.Discard(size); err != nil {
			return ended(fmt.Errorf("tag body: %w", cut(err)))
		}
		var prev [4]byte
		if _, err := io.ReadFull(fr, prev[:]); err != nil {
			return ended(fmt.Errorf("PreviousTagSize: %w", cut(err)))
		}
		if int(binary.BigEndian.Uint32(prev[:])) != size+11 {
			r.malformed++
			r.err = errors.New("bad PreviousTagSize")
			r.disconnected = ctx.Err() == nil
			return r
		}
		now := time.Now()
		r.gap(now.Sub(lastTag), lastTag.Sub(start), stall, prog)
		lastTag = now
		if typ == 8 || typ == 9 {
			tr := typ - 8
			if seen[tr] && ts < last[tr] {
				r.outOfOrder++
			}
			seen[tr], last[tr] = true, ts
		}
		n := int64(11 + size + 4)
		r.bytes += n
		r.tags++
		prog.bytes.Add(n)
	}
}

// keyframe says whether a video tag whose body begins with b0, b1 is a
// keyframe with a picture: legacy FLV (AVC and HEVC, codec ids 7 and 12,
// with their packet type in b1) or enhanced RTMP (IsExHeader, its packet
// type in b0), not a sequence header or end.
func keyframe(b0, b1 byte) bool {
	if (b0>>4)&0x07 != 1 {
		return false
	}
	if b0&0x80 != 0 { // enhanced RTMP: CodedFrames or CodedFramesX
		pt := b0 & 0x0f
		return pt == 1 || pt == 3
	}
	if id := b0 & 0x0f; id == 7 || id == 12 {
		return b1 == 1
	}
	return true
}

// response is a response head, with its body to read and a close for
// its connection.
type response struct {
	status   int
	location string
	body     io.Reader
	close    func()
}

// get sends a GET for u on a new connection, which ctx's end closes, and
// reads the response head. Unless it fails, the caller calls close.
func get(ctx context.Context, u *url.URL) (response, error) {
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return response{}, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	closeConn := func() {
		stop()
		_ = conn.Close()
	}
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: flvbench\r\n\r\n", u.RequestURI(), u.Host); err != nil {
		closeConn()
		return response{}, err
	}
	resp, err := readHead(bufio.NewReaderSize(conn, 16*1024))
	if err != nil {
		closeConn()
		return resp, err
	}
	resp.close = closeConn
	return resp, nil
}

// readHead reads the response head and returns its status, Location and
// a reader for the body (de-chunked if chunked).
func readHead(br *bufio.Reader) (response, error) {
	var resp response
	left := maxHead
	line, err := headLine(br, &left)
	if err != nil {
		return resp, err
	}
	if _, err := fmt.Sscanf(line, "HTTP/1.%d %d", new(int), &resp.status); err != nil {
		return resp, fmt.Errorf("status line %q", line)
	}
	chunked, length := false, int64(-1)
	for {
		h, err := headLine(br, &left)
		if err != nil {
			return resp, err
		}
		h = strings.TrimSpace(h)
		if h == "" {
			break
		}
		k, v, ok := strings.Cut(h, ":")
		switch {
		case !ok:
		case strings.EqualFold(k, "Transfer-Encoding") && strings.Contains(strings.ToLower(v), "chunked"):
			chunked = true
		case strings.EqualFold(k, "Content-Length"):
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n >= 0 {
				length = n
			}
		case strings.EqualFold(k, "Location"):
			resp.location = strings.TrimSpace(v)
		}
	}
	switch {
	case chunked:
		resp.body = &chunkedReader{r: br}
	case length >= 0: // a body of known length, on a connection kept open after it
		resp.body = &lengthReader{r: br, left: length}
	default: // close-delimited
		resp.body = br
	}
	return resp, nil
}

// maxHead bounds a response head: a server that sends an endless header
// (line) fails its viewer instead of growing its memory.
const maxHead = 64 << 10

// errHeadTooLong: a response head over maxHead, or a line of it over the
// read buffer.
var errHeadTooLong = errors.New("response head over 64 KiB, or a line of it over 16 KiB")

// headLine reads one line of a response head, of the *left bytes the head
// may still take.
func headLine(br *bufio.Reader, left *int) (string, error) {
	line, err := br.ReadSlice('\n')
	*left -= len(line)
	switch {
	case errors.Is(err, bufio.ErrBufferFull), *left < 0:
		return "", errHeadTooLong
	case err != nil:
		return "", err
	}
	return string(line), nil
}

// chunkedReader decodes HTTP/1.1 chunked encoding without allocating.
type chunkedReader struct {
	r    *bufio.Reader
	left int64
	done bool
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	for c.left == 0 {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, cut(err)
		}
		var n int64
		digits := 0
	size:
		for _, b := range line {
			switch {
			case b >= '0' && b <= '9':
				n = n<<4 | int64(b-'0')
			case b >= 'a' && b <= 'f':
				n = n<<4 | int64(b-'a'+10)
			case b >= 'A' && b <= 'F':
				n = n<<4 | int64(b-'A'+10)
			default: // the end of the line, or a chunk extension
				break size
			}
			digits++
		}
		switch {
		case digits == 0 || digits > 15:
			return 0, fmt.Errorf("chunk size line %q", line)
		case n == 0: // the last chunk: the body ended here
			c.done = true
			return 0, io.EOF
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err != nil {
		return n, cut(err)
	}
	if c.left == 0 {
		crlf, err := c.r.Peek(2)
		if err != nil {
			return n, cut(err)
		}
		if string(crlf) != "\r\n" {
			// The chunk's size line said more or less than it carried.
			return n, fmt.Errorf("%w: chunk followed by %q, not CRLF", errChunkFraming, crlf)
		}
		_, _ = c.r.Discard(2)
	}
	return n, nil
}

// errChunkFraming: a chunked body whose chunks are not where their size
// lines say.
var errChunkFraming = errors.New("chunked body out of frame")

// cut turns the end of a connection where the body had more to come into
// io.ErrUnexpectedEOF.
func cut(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// lengthReader reads a body of known length, which ends after it even
// on a connection kept open for another request.
type lengthReader struct {
	r    io.Reader
	left int64
}

func (l *lengthReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if err != nil {
		return n, cut(err)
	}
	return n, nil
}

// maxErrors is how many kinds of error a summary lists.
const maxErrors = 10

func summarize(rs []viewerResult, elapsed time.Duration, viewers int) Summary {
	s := Summary{Viewers: viewers, DurationSec: elapsed.Seconds()}
	var ttfb, ttfk []float64
	errs := map[string]int{}
	for _, r := range rs {
		if !r.started {
			continue
		}
		s.Started++
		if r.status != 200 {
			s.Failed++
			if r.err != nil {
				errs[r.err.Error()]++
			}
			continue
		}
		s.Connected++
		s.BytesTotal += r.bytes
		s.Tags += r.tags
		s.Malformed += r.malformed
		s.Stalls += r.stalls
		s.JoinStalls += r.joinStalls
		s.LongestGapMs = max(s.LongestGapMs, float64(r.longestGap.Microseconds())/1000)
		s.OutOfOrder += r.outOfOrder
		if r.disconnected {
			s.Disconnects++
			if r.err != nil {
				errs[r.err.Error()]++
			}
		}
		if r.ttfb > 0 {
			ttfb = append(ttfb, float64(r.ttfb.Microseconds())/1000)
		}
		if r.ttfk > 0 {
			ttfk = append(ttfk, float64(r.ttfk.Microseconds())/1000)
		} else {
			s.NoKeyframe++
		}
	}
	s.TTFBms = percentiles(ttfb)
	s.TTFKms = percentiles(ttfk)
	if s.Connected > 0 {
		s.MbpsTotal = float64(s.BytesTotal) * 8 / elapsed.Seconds() / 1e6
		s.MbpsPerViewer = s.MbpsTotal / float64(s.Connected)
	}
	// The most frequent errors first (then by text), at most maxErrors.
	kinds := slices.Collect(maps.Keys(errs))
	slices.SortFunc(kinds, func(a, b string) int {
		if c := cmp.Compare(errs[b], errs[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, e := range kinds[:min(len(kinds), maxErrors)] {
		s.Errors = append(s.Errors, fmt.Sprintf("%dx %s", errs[e], e))
	}
	if len(kinds) > maxErrors {
		s.Errors = append(s.Errors, fmt.Sprintf("and %d kinds of error more", len(kinds)-maxErrors))
	}
	return s
}

func percentiles(v []float64) [3]float64 {
	if len(v) == 0 {
		return [3]float64{}
	}
	slices.Sort(v)
	// Nearest rank: the smallest value with at least q of them at or below.
	at := func(q float64) float64 { return v[max(0, int(math.Ceil(q*float64(len(v))))-1)] }
	return [3]float64{at(0.50), at(0.95), at(0.99)}
}
