// Package testkit holds what flvgw's end-to-end tests share: a strict FLV
// stream checker, a Go RTMP publisher, and helpers for real peers (the
// flvgw binary, ffmpeg, ffprobe) on loopback.
package testkit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	flv "github.com/yutopp/go-flv"
)

// Tag is one parsed FLV tag.
type Tag struct {
	Type      uint8
	Timestamp uint32
	Body      []byte
	Keyframe  bool
	SeqHeader bool
}

// ErrMalformed reports bytes that are not a well-formed FLV stream.
var ErrMalformed = errors.New("malformed FLV")

// Stream is what a strict read of an FLV byte stream saw.
type Stream struct {
	HasAudio, HasVideo bool // header flags
	Tags               []Tag
	Bytes              int64
}

// TagReader reads FLV tags one by one and checks every structural rule:
// the header, each tag's type and size, and each PreviousTagSize.
type TagReader struct {
	r      *bufio.Reader
	Header flv.Header
	n      int64
}

// NewTagReader reads and checks the FLV header and PreviousTagSize0.
func NewTagReader(r io.Reader) (*TagReader, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	h, err := flv.DecodeFlvHeader(br)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	if h.DataOffset != flv.HeaderLength {
		return nil, fmt.Errorf("%w: data offset %d", ErrMalformed, h.DataOffset)
	}
	var size [4]byte
	if _, err := io.ReadFull(br, size[:]); err != nil {
		return nil, fmt.Errorf("%w: PreviousTagSize0: %w", ErrMalformed, err)
	}
	if binary.BigEndian.Uint32(size[:]) != 0 {
		return nil, fmt.Errorf("%w: PreviousTagSize0 is %d", ErrMalformed, binary.BigEndian.Uint32(size[:]))
	}
	return &TagReader{r: br, Header: *h, n: 13}, nil
}

// Next returns the next tag; io.EOF exactly at a tag boundary, an error
// wrapping ErrMalformed (or io.ErrUnexpectedEOF) for anything else.
func (tr *TagReader) Next() (Tag, error) {
	var hdr [11]byte
	n, err := io.ReadFull(tr.r, hdr[:])
	if err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return Tag{}, io.EOF
		}
		return Tag{}, fmt.Errorf("%w: tag header after %d bytes: %w", ErrMalformed, tr.n, err)
	}
	typ := hdr[0]
	if typ != 8 && typ != 9 && typ != 18 {
		return Tag{}, fmt.Errorf("%w: tag type %d at byte %d", ErrMalformed, typ, tr.n)
	}
	size := int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	ts := uint32(hdr[4])<<16 | uint32(hdr[5])<<8 | uint32(hdr[6]) | uint32(hdr[7])<<24
	if hdr[8] != 0 || hdr[9] != 0 || hdr[10] != 0 {
		return Tag{}, fmt.Errorf("%w: stream id not 0 at byte %d", ErrMalformed, tr.n)
	}
	if size == 0 {
		return Tag{}, fmt.Errorf("%w: empty tag at byte %d", ErrMalformed, tr.n)
	}
	body := make([]byte, size+4)
	if _, err := io.ReadFull(tr.r, body); err != nil {
		return Tag{}, fmt.Errorf("%w: tag body at byte %d: %w", ErrMalformed, tr.n, err)
	}
	if prev := binary.BigEndian.Uint32(body[size:]); int(prev) != size+11 {
		return Tag{}, fmt.Errorf("%w: PreviousTagSize %d, want %d at byte %d", ErrMalformed, prev, size+11, tr.n)
	}
	tr.n += int64(11 + size + 4)
	t := Tag{Type: typ, Timestamp: ts, Body: body[:size]}
	switch typ {
	case 9:
		t.Keyframe = body[0]>>4 == 1
		if body[0]&0x0f == 7 && size > 1 {
			t.SeqHeader = body[1] == 0
			t.Keyframe = t.Keyframe && !t.SeqHeader
		}
	case 8:
		t.SeqHeader = body[0]>>4 == 10 && size > 1 && body[1] == 0
	}
	return t, nil
}

// Offset is the number of bytes read so far.
func (tr *TagReader) Offset() int64 { return tr.n }

// ReadStream reads a whole FLV stream until EOF. A stream cut inside a tag
// is an error.
func ReadStream(r io.Reader) (*Stream, error) {
	tr, err := NewTagReader(r)
	if err != nil {
		return nil, err
	}
	s := &Stream{HasAudio: tr.Header.Flags&flv.FlagsAudio != 0, HasVideo: tr.Header.Flags&flv.FlagsVideo != 0}
	for {
		t, err := tr.Next()
		s.Bytes = tr.Offset()
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		if err != nil {
			return s, err
		}
		s.Tags = append(s.Tags, t)
	}
}

// ReadFile parses an FLV file.
func ReadFile(path string) (*Stream, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadStream(f)
}

// CheckPlayable verifies what a viewer must see: media tags only after the
// sequence headers of the tracks the header declares, the first video tag a
// keyframe, and timestamps that never go back within a track.
func (s *Stream) CheckPlayable() error {
	var videoSeq, audioSeq, sawVideo bool
	last := map[uint8]uint32{}
	for i, t := range s.Tags {
		if t.Type == 18 {
			continue
		}
		if prev, ok := last[t.Type]; ok && t.Timestamp < prev {
			return fmt.Errorf("tag %d: type %d timestamp %d after %d", i, t.Type, t.Timestamp, prev)
		}
		last[t.Type] = t.Timestamp
		switch {
		case t.Type == 9 && t.SeqHeader:
			videoSeq = true
		case t.Type == 8 && t.SeqHeader:
			audioSeq = true
		case t.Type == 9:
			if !videoSeq {
				return fmt.Errorf("tag %d: video before the AVC sequence header", i)
			}
			if !sawVideo && !t.Keyframe {
				return fmt.Errorf("tag %d: first video frame is not a keyframe", i)
			}
			sawVideo = true
		case t.Type == 8:
			if !audioSeq {
				return fmt.Errorf("tag %d: audio before the AAC sequence header", i)
			}
		}
	}
	if s.HasVideo && !videoSeq || !s.HasVideo && videoSeq {
		return fmt.Errorf("header video flag %v, video sequence header seen %v", s.HasVideo, videoSeq)
	}
	if s.HasAudio && !audioSeq || !s.HasAudio && audioSeq {
		return fmt.Errorf("header audio flag %v, audio sequence header seen %v", s.HasAudio, audioSeq)
	}
	return nil
}

// CountMedia counts audio and video tags.
func (s *Stream) CountMedia() (audio, video int) {
	for _, t := range s.Tags {
		switch t.Type {
		case 8:
			audio++
		case 9:
			video++
		}
	}
	return audio, video
}
