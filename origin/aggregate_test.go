package origin

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

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
