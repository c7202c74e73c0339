package origin

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// chunk builds one chunk with a basic header of format f on csid 4.
func chunk(f byte, header []byte, payload []byte) []byte {
	return append(append([]byte{f<<6 | 4}, header...), payload...)
}

func type0(ts uint32, length int, typ byte, sid uint32) []byte {
	h := []byte{byte(ts >> 16), byte(ts >> 8), byte(ts), byte(length >> 16), byte(length >> 8), byte(length), typ}
	return binary.LittleEndian.AppendUint32(h, sid)
}

func TestChunkReaderFormats(t *testing.T) {
	body := bytes.Repeat([]byte{0xaa}, 200) // spans two 128-byte chunks
	var in []byte
	in = append(in, chunk(0, type0(1000, len(body), msgVideo, 1), body[:128])...)
	in = append(in, chunk(3, nil, body[128:])...)
	// format 1: delta 40, new length and type
	in = append(in, chunk(1, []byte{0, 0, 40, 0, 0, 3, msgAudio}, []byte{1, 2, 3})...)
	// format 2: delta 20
	in = append(in, chunk(2, []byte{0, 0, 20}, []byte{4, 5, 6})...)
	// format 3 as a new message: same length, type and delta
	in = append(in, chunk(3, nil, []byte{7, 8, 9})...)
	// extended timestamp
	ext := type0(0xffffff, 2, msgVideo, 1)
	in = append(in, chunk(0, append(ext, 0x01, 0x00, 0x00, 0x00), []byte{0x17, 0x01})...)

	cr := newChunkReader(bytes.NewReader(in))
	want := []struct {
		typ uint8
		ts  uint32
		n   int
	}{{msgVideo, 1000, 200}, {msgAudio, 1040, 3}, {msgAudio, 1060, 3}, {msgAudio, 1080, 3}, {msgVideo, 0x01000000, 2}}
	for i, w := range want {
		m, err := cr.next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.typeID != w.typ || m.timestamp != w.ts || len(m.payload) != w.n {
			t.Fatalf("message %d: type %d ts %d len %d, want %+v", i, m.typeID, m.timestamp, len(m.payload), w)
		}
	}
	if _, err := cr.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}

func TestChunkReaderSetChunkSize(t *testing.T) {
	var in []byte
	in = append(in, chunk(0, type0(0, 4, msgSetChunkSize, 0), []byte{0, 0, 0x10, 0})...) // 4096
	body := bytes.Repeat([]byte{1}, 3000)
	in = append(in, chunk(0, type0(0, len(body), msgVideo, 1), body)...)
	cr := newChunkReader(bytes.NewReader(in))
	if m, err := cr.next(); err != nil || m.typeID != msgSetChunkSize {
		t.Fatalf("%v %v", m, err)
	}
	if m, err := cr.next(); err != nil || len(m.payload) != 3000 {
		t.Fatalf("one 3000-byte chunk after set chunk size: %v", err)
	}
}

func TestChunkReaderRefusesHostileInput(t *testing.T) {
	for name, in := range map[string][]byte{
		"huge message":       chunk(0, type0(0, 0xffffff, msgVideo, 1), nil),
		"format 3 first":     chunk(3, nil, []byte{1}),
		"zero chunk size":    chunk(0, type0(0, 4, msgSetChunkSize, 0), []byte{0, 0, 0, 0}),
		"format 0 mid-msg":   append(chunk(0, type0(0, 300, msgVideo, 1), bytes.Repeat([]byte{1}, 128)), chunk(0, type0(0, 300, msgVideo, 1), nil)...),
		"short chunk size":   chunk(0, type0(0, 2, msgSetChunkSize, 0), []byte{0, 1}),
		"too many csid used": manyStreams(),
		"unfinished, many":   manyUnfinished(),
	} {
		cr := newChunkReader(bytes.NewReader(in))
		var err error
		for range 100 {
			if _, err = cr.next(); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrMalformedRTMP) {
			t.Errorf("%s: %v, want ErrMalformedRTMP", name, err)
		}
	}
}

// manyUnfinished begins a message of maxMessageLen on each of three chunk
// streams and sends 7 MiB of each, in chunks of 1 MiB: 21 MiB of
// unfinished messages in all, none over its own bound.
func manyUnfinished() []byte {
	const size = 1 << 20
	in := chunk(0, type0(0, 4, msgSetChunkSize, 0), []byte{0, 0x10, 0, 0})
	for cs := byte(5); cs < 8; cs++ {
		in = append(in, 0<<6|cs)
		in = append(in, type0(0, maxMessageLen, msgVideo, 1)...)
		in = append(in, make([]byte, size)...)
		for range 6 {
			in = append(in, 3<<6|cs)
			in = append(in, make([]byte, size)...)
		}
	}
	return in
}

func manyStreams() []byte {
	var in []byte
	for cs := byte(3); cs < 3+maxChunkStreams+2; cs++ {
		in = append(in, append([]byte{0<<6 | 0, cs}, append(type0(0, 1, msgAudio, 1), 0xaf)...)...)
	}
	return in
}

func TestChunkWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	cw := &chunkWriter{w: bufio.NewWriter(&buf)}
	payload := bytes.Repeat([]byte{9}, 300)
	if err := cw.write(commandChunkID, msgCommandAMF0, 1, 5, payload); err != nil {
		t.Fatal(err)
	}
	m, err := newChunkReader(&buf).next()
	if err != nil || m.typeID != msgCommandAMF0 || m.streamID != 1 || m.timestamp != 5 || !bytes.Equal(m.payload, payload) {
		t.Fatalf("round trip: %+v %v", m, err)
	}
}

// FuzzChunkReader: no input makes the reader panic or hold more than its
// bounds allow.
func FuzzChunkReader(f *testing.F) {
	f.Add(chunk(0, type0(0, 3, msgAudio, 1), []byte{0xaf, 1, 2}))
	f.Add(append(chunk(0, type0(0, 200, msgVideo, 1), bytes.Repeat([]byte{1}, 128)), chunk(3, nil, bytes.Repeat([]byte{1}, 72))...))
	f.Add(chunk(0, type0(0xffffff, 1, msgVideo, 1), []byte{0, 0, 0, 1, 0x17}))
	f.Fuzz(func(t *testing.T, in []byte) {
		cr := newChunkReader(bytes.NewReader(in))
		for range 1000 {
			m, err := cr.next()
			if err != nil {
				return
			}
			if len(m.payload) > maxMessageLen {
				t.Fatalf("message of %d bytes", len(m.payload))
			}
			if m.typeID == msgCommandAMF0 {
				_, _, _, _ = decodeCommand(m)
			}
			_ = metadataBody(m)
		}
	})
}

// FuzzFLVReader: no input makes the FLV reader panic.
func FuzzFLVReader(f *testing.F) {
	f.Add([]byte("FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00\x09\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x17\x01\x00\x00\x00\x0d"))
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := NewFLVReader(bytes.NewReader(in))
		if err != nil {
			return
		}
		for range 1000 {
			if _, err := fr.Next(); err != nil {
				return
			}
		}
	})
}
