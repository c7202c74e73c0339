package origin

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"flvgw/pool"
)

// aggregate packs tags into the body of an RTMP aggregate message, each
// an FLV tag (11-byte header, body, previous tag size), stamped its
// timestamp plus shift.
func aggregate(tags []FLVTag, shift uint32) []byte {
	var b []byte
	for _, t := range tags {
		ts := t.Timestamp + shift
		n := len(t.Body)
		b = append(b, t.Type, byte(n>>16), byte(n>>8), byte(n),
			byte(ts>>16), byte(ts>>8), byte(ts), byte(ts>>24), 0, 0, 0)
		b = append(b, t.Body...)
		b = binary.BigEndian.AppendUint32(b, uint32(11+n))
	}
	return b
}

// sendAt sends one message stamped ts on the publishing stream.
func sendAt(p *rtmpPlayer, typeID uint8, ts uint32, payload []byte) error {
	if err := p.conn.SetWriteDeadline(time.Now().Add(p.writeFor)); err != nil {
		return err
	}
	return p.cw.write(mediaStreamChunk, typeID, p.streamID, ts, payload)
}

// publishAs publishes live/name on p.
func publishAs(t *testing.T, p *rtmpPlayer, name string) {
	t.Helper()
	if err := p.command(p.streamID, "publish", 0, nil, name, "live"); err != nil {
		t.Fatal(err)
	}
	if code := awaitStatus(t, p, "publish "+name); code != "NetStream.Publish.Start" {
		t.Fatalf("publish %s: %s, want NetStream.Publish.Start", name, code)
	}
}

// readyReader subscribes to key, waits for it to be ready and returns a
// reader of it; the subscription is closed at the test's cleanup.
func readyReader(t *testing.T, p *pool.Pool, key string) (*pool.Subscription, *pool.Reader) {
	t.Helper()
	sub, err := p.Subscribe(key, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sub.Entry().WaitReady(ctx); err != nil {
		t.Fatalf("%s never became ready: %v", key, err)
	}
	return sub, sub.NewReader()
}

// readTags reads from r until it holds want tags (the FLV header left
// out), within 10 s.
func readTags(t *testing.T, r *pool.Reader, got []FLVTag, want int, what string) []FLVTag {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(got) < want {
		batch, err := r.Next(ctx, nil)
		if err != nil {
			t.Fatalf("%s: %d of %d tags, then %v", what, len(got), want, err)
		}
		for _, b := range batch {
			if len(b) >= 3 && string(b[:3]) == "FLV" {
				continue
			}
			got = append(got, FLVTag{
				Type:      b[0],
				Timestamp: uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6]) | uint32(b[7])<<24,
				Body:      b[11 : len(b)-4],
			})
		}
	}
	return got
}

// An encoder or relay that sends its media as aggregate messages (type
// 22: a run of FLV tags, each stamped relative to the first, the message
// stamped where the first plays) publishes: every sub-tag reaches the
// entry as the audio, video or data message it carries would, at the
// message's timestamp plus its offset from the first sub-tag, as
// nginx-rtmp and SRS read them. The sub-tags here are stamped on another
// clock (past 2^24 ms, in FLV's extended byte) than the messages, whose
// timestamps are the ones viewers must see. go-rtmp refused aggregates
// ("Not implemented"), which ended the publisher's connection.
func TestAggregateMessagesArePublished(t *testing.T) {
	logs := &logBuffer{}
	s, addr, cancel, served := startOriginLogging(t, slog.New(slog.NewTextHandler(logs, nil)))
	defer func() { cancel(); <-served }()

	f, err := os.Open("../test/testdata/sample.flv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fr, err := NewFLVReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var clip []FLVTag
	for {
		tag, err := fr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		clip = append(clip, tag)
	}
	// The clip: onMetaData, the AVC and AAC sequence headers, an AAC
	// frame, then the first keyframe (at 23 ms) and a keyframe a second.
	keys := 0
	secondKey := 0
	for i, tag := range clip {
		if tag.Type == pool.TagVideo && tag.Body[0]>>4 == 1 && tag.Body[1] == 1 {
			if keys++; keys == 2 {
				secondKey = i
				break
			}
		}
	}
	if clip[0].Type != pool.TagScript || clip[4].Type != pool.TagVideo || clip[4].Body[0] != 0x17 || secondKey == 0 {
		t.Fatalf("sample.flv is not the clip this test expects: %d tags", len(clip))
	}

	p := rtmpClient(t, addr)
	publishAs(t, p, "agg")
	const shift = 0x01234567
	send := func(tags []FLVTag) {
		t.Helper()
		if err := sendAt(p, msgAggregate, tags[0].Timestamp, aggregate(tags, shift)); err != nil {
			t.Fatal(err)
		}
	}
	// The first aggregate ends before the second keyframe: the viewer
	// that joins after it starts at the first.
	send(clip[:secondKey-20])
	_, r := readyReader(t, s.pool, "live/agg")
	// The viewer starts with onMetaData and the sequence headers, then
	// the GOP from the first keyframe; the AAC frame before it is not
	// in that GOP.
	want := append(clip[:3:3], clip[4:]...)
	got := readTags(t, r, nil, secondKey-20-1, "the first aggregate")
	for from := secondKey - 20; from < len(clip); from += 7 {
		to := min(from+7, len(clip))
		send(clip[from:to])
		got = readTags(t, r, got, to-1, fmt.Sprintf("the aggregate of tags %d to %d", from, to))
	}
	if len(got) != len(want) {
		t.Fatalf("the viewer got %d tags, want %d", len(got), len(want))
	}
	if got[3].Type != pool.TagVideo || got[3].Body[0] != 0x17 || got[3].Body[1] != 1 {
		t.Fatalf("the viewer's first media tag is of type %d (%x), want the keyframe", got[3].Type, got[3].Body[:2])
	}
	last := map[uint8]uint32{}
	for i := range want {
		g, w := got[i], want[i]
		if g.Type != w.Type || g.Timestamp != w.Timestamp || !bytes.Equal(g.Body, w.Body) {
			t.Fatalf("tag %d: type %d at %d ms (%d bytes), want type %d at %d ms (%d bytes)",
				i, g.Type, g.Timestamp, len(g.Body), w.Type, w.Timestamp, len(w.Body))
		}
		// Each track's time goes forward (the clip interleaves its
		// tracks a few milliseconds apart).
		if prev, ok := last[g.Type]; ok && g.Timestamp < prev {
			t.Fatalf("tag %d of type %d at %d ms, after one at %d ms", i, g.Type, g.Timestamp, prev)
		}
		last[g.Type] = g.Timestamp
	}
	if last[pool.TagVideo] < 9000 {
		t.Fatalf("the viewer's video ends at %d ms, want the clip's 10 s", last[pool.TagVideo])
	}
	snap, _ := s.pool.Lookup("live/agg")
	if snap.Codecs.Width == 0 || snap.Codecs.Video == "" || snap.Codecs.Audio == "" {
		t.Fatalf("live/agg's codecs %+v, want those of the clip's onMetaData and sequence headers", snap.Codecs)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("warnings while publishing aggregates:\n%s", logs.String())
	}
}

// A malformed aggregate message (a sub-tag that runs past the message's
// end, a header cut short, a previous tag size missing) ends its
// publisher's connection with a warning that says why; none of its
// sub-tags reach the entry, and another stream's viewer plays on.
func TestMalformedAggregateEndsOnlyItsPublisher(t *testing.T) {
	logs := &logBuffer{}
	s, addr, cancel, served := startOriginLogging(t, slog.New(slog.NewTextHandler(logs, nil)))
	defer func() { cancel(); <-served }()

	good := rtmpClient(t, addr)
	publishAs(t, good, "good")
	for _, body := range [][]byte{testAVCSeq, testAVCKey} {
		if err := good.write(mediaStreamChunk, msgVideo, good.streamID, body); err != nil {
			t.Fatal(err)
		}
	}
	_, viewer := readyReader(t, s.pool, "live/good")
	seen := readTags(t, viewer, nil, 2, "live/good")

	valid := aggregate([]FLVTag{{Type: pool.TagVideo, Body: testAVCSeq}, {Type: pool.TagVideo, Timestamp: 40, Body: testAVCKey}}, 0)
	cases := []struct {
		name string
		body []byte
	}{
		{"past the end", append(bytes.Clone(valid), pool.TagVideo, 0, 0x10, 0, 0, 0, 80, 0, 0, 0, 0, 0x27, 1)},
		{"header cut short", append(bytes.Clone(valid), pool.TagAudio, 0, 0, 2)},
		{"no previous tag size", valid[:len(valid)-2]},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := fmt.Sprintf("bad%d", i)
			key := "live/" + name
			bad := rtmpClient(t, addr)
			publishAs(t, bad, name)
			sub, err := s.pool.Subscribe(key, false)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if err := sendAt(bad, msgAggregate, 1000, c.body); err != nil {
				t.Fatal(err)
			}
			_ = bad.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				_, err := bad.readMessage()
				if err == nil {
					continue
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("the origin kept the connection 10 s after its malformed aggregate\n%s", logs.String())
				}
				break
			}
			select {
			case <-sub.Entry().Done():
			case <-time.After(10 * time.Second):
				t.Fatalf("%s is %s 10 s after its publisher's malformed aggregate", key, sub.Entry().State())
			}
			select {
			case <-sub.Entry().Ready():
				t.Fatalf("the valid sub-tags before the malformed one reached %s", key)
			default:
			}
			awaitLog(t, logs, `level=WARN msg="publish ended" key=`+key)
			line := ""
			for l := range strings.Lines(logs.String()) {
				if strings.Contains(l, "key="+key) && strings.Contains(l, "publish ended") {
					line = l
				}
			}
			if !strings.Contains(line, "malformed RTMP") || !strings.Contains(line, "aggregate") {
				t.Fatalf("the publisher's end does not say its aggregate was malformed:\n%s", line)
			}
		})
	}

	// The other stream's publisher and viewer go on.
	if err := good.write(mediaStreamChunk, msgVideo, good.streamID, append(bytes.Clone(testAVCKey), 2)); err != nil {
		t.Fatal(err)
	}
	seen = readTags(t, viewer, seen, len(seen)+1, "live/good after the malformed aggregates")
	if last := seen[len(seen)-1]; !bytes.Equal(last.Body, append(bytes.Clone(testAVCKey), 2)) {
		t.Fatalf("live/good's viewer got %x, want the keyframe sent last", last.Body)
	}
	if snap, ok := s.pool.Lookup("live/good"); !ok || snap.State != pool.StateLive.String() {
		t.Fatalf("live/good is %+v after the other publishers' malformed aggregates, want live", snap)
	}
}

// splitAggregate stamps each sub-tag at the message's timestamp plus its
// offset from the first sub-tag, also one stamped before the first (its
// offset is negative) and across the wrap of the 32-bit clock, and finds
// a broken framing before it passes on any tag.
func TestSplitAggregate(t *testing.T) {
	tags := []FLVTag{
		{Type: pool.TagVideo, Timestamp: 0xffffff00, Body: []byte{1}},
		{Type: pool.TagAudio, Timestamp: 0xfffffff0, Body: []byte{2, 2}},
		{Type: pool.TagVideo, Timestamp: 0x10, Body: []byte{3}},
		{Type: pool.TagScript, Timestamp: 0xfffffef0, Body: []byte{4}},
	}
	var got []FLVTag
	collect := func(typ uint8, ts uint32, body []byte) error {
		got = append(got, FLVTag{Type: typ, Timestamp: ts, Body: body})
		return nil
	}
	if err := splitAggregate(1000, aggregate(tags, 0), collect); err != nil {
		t.Fatal(err)
	}
	want := []uint32{1000, 1000 + 0xf0, 1000 + 0x110, 1000 - 0x10}
	if len(got) != len(tags) {
		t.Fatalf("%d tags, want %d", len(got), len(tags))
	}
	for i, g := range got {
		if g.Type != tags[i].Type || g.Timestamp != want[i] || !bytes.Equal(g.Body, tags[i].Body) {
			t.Fatalf("tag %d: type %d at %d, %x; want type %d at %d, %x", i, g.Type, g.Timestamp, g.Body, tags[i].Type, want[i], tags[i].Body)
		}
	}
	if err := splitAggregate(0, nil, collect); err != nil {
		t.Fatalf("an empty aggregate: %v", err)
	}

	valid := aggregate(tags[:2], 0)
	for name, payload := range map[string][]byte{
		"past the end":         append(bytes.Clone(valid), pool.TagVideo, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 9),
		"header cut short":     append(bytes.Clone(valid), pool.TagVideo, 0, 0),
		"no previous tag size": valid[:len(valid)-1],
	} {
		got = nil
		err := splitAggregate(0, payload, collect)
		if !errors.Is(err, ErrMalformedRTMP) {
			t.Errorf("%s: %v, want ErrMalformedRTMP", name, err)
		}
		if len(got) != 0 {
			t.Errorf("%s: %d tags passed on before the error", name, len(got))
		}
	}
}

// FuzzSplitAggregate: no aggregate payload makes splitAggregate panic, and
// one it accepts is exactly the tags it passed on.
func FuzzSplitAggregate(f *testing.F) {
	f.Add(aggregate([]FLVTag{{Type: pool.TagVideo, Body: testAVCKey}, {Type: pool.TagAudio, Timestamp: 20, Body: []byte{0xaf, 1}}}, 0))
	f.Add([]byte{pool.TagVideo, 0, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		n := 0
		err := splitAggregate(0, in, func(_ uint8, _ uint32, body []byte) error {
			n += 11 + len(body) + 4
			return nil
		})
		if err == nil && n != len(in) {
			t.Fatalf("%d bytes of tags passed on from an aggregate of %d", n, len(in))
		}
		if err != nil && (n != 0 || !errors.Is(err, ErrMalformedRTMP)) {
			t.Fatalf("%v after %d bytes of tags", err, n)
		}
	})
}

// An RTMP upstream's aggregate messages reach the pull's viewers as the
// messages they carry would: audio, video and onMetaData (the stream's
// metadata), each at the message's timestamp plus its offset from the
// first sub-tag.
func TestPullRelaysAggregates(t *testing.T) {
	meta := onMetaData(t)
	first := []FLVTag{
		{Type: pool.TagScript, Timestamp: 0, Body: meta},
		{Type: pool.TagVideo, Timestamp: 0, Body: spliceAVCSeq},
		{Type: pool.TagAudio, Timestamp: 0, Body: spliceAACSeq},
		{Type: pool.TagVideo, Timestamp: 0, Body: spliceAVCKey},
		{Type: pool.TagAudio, Timestamp: 20, Body: spliceAACRaw},
		{Type: pool.TagVideo, Timestamp: 40, Body: spliceAVCInter},
	}
	second := []FLVTag{
		{Type: pool.TagVideo, Timestamp: 0, Body: spliceAVCKey},
		{Type: pool.TagAudio, Timestamp: 20, Body: spliceAACRaw},
	}
	finish, sendSecond := make(chan struct{}), make(chan struct{})
	up := serve(t, func(c net.Conn) {
		srv, _, err := acceptPlay(c)
		if err != nil {
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if srv.cw.write(6, msgAggregate, 1, 1000, aggregate(first, 0x01234567)) != nil {
			return
		}
		select { // the second once the viewer has read the first
		case <-sendSecond:
		case <-finish:
			return
		}
		if srv.cw.write(6, msgAggregate, 1, 2000, aggregate(second, 0x01234567)) != nil {
			return
		}
		<-finish
	})
	defer close(finish)
	p := newPull(t, EdgeConfig{PullTimeout: 5 * time.Second, RetryBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		Upstream{Name: "up", URL: "rtmp://" + up})
	_, r := readyReader(t, p, "live/x")
	got := readTags(t, r, nil, 6, "the upstream's first aggregate")
	close(sendSecond)
	got = readTags(t, r, got, 7, "the upstream's second aggregate")
	want := []FLVTag{
		{pool.TagScript, 0, meta}, {pool.TagVideo, 0, spliceAVCSeq}, {pool.TagAudio, 0, spliceAACSeq},
		{pool.TagVideo, 1000, spliceAVCKey}, {pool.TagAudio, 1020, spliceAACRaw}, {pool.TagVideo, 1040, spliceAVCInter},
		{pool.TagVideo, 2000, spliceAVCKey},
	}
	for i, w := range want {
		g := got[i]
		if g.Type != w.Type || !bytes.Equal(g.Body, w.Body) || (g.Type != pool.TagScript && !isSeqHeader(g) && g.Timestamp != w.Timestamp) {
			t.Fatalf("tag %d: type %d at %d ms, %x; want type %d at %d ms, %x", i, g.Type, g.Timestamp, g.Body, w.Type, w.Timestamp, w.Body)
		}
	}
}

// isSeqHeader says whether an audio or video tag is a codec's sequence
// header (which viewers get stamped as the entry caches them).
func isSeqHeader(t FLVTag) bool {
	return len(t.Body) > 1 && t.Body[1] == 0 && (t.Type == pool.TagVideo || t.Type == pool.TagAudio && t.Body[0]>>4 == 10)
}
