// Package testkit holds what flvgw's end-to-end tests share: a strict FLV
// stream checker, a Go RTMP publisher, and helpers for real peers (the
// flvgw binary, ffmpeg, ffprobe) on loopback.
package testkit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	flv "github.com/yutopp/go-flv"

	"flvgw/origin"
)

// Tag is one parsed FLV tag.
type Tag struct {
	Type      uint8
	Timestamp uint32
	Body      []byte
	Keyframe  bool
	SeqHeader bool
}

// Stream is what a strict read of an FLV byte stream saw.
type Stream struct {
	HasAudio, HasVideo bool // header flags
	Tags               []Tag
	Bytes              int64
}

// TagReader reads FLV tags strictly (origin.FLVReader) and classifies them.
type TagReader struct {
	*origin.FLVReader
}

// NewTagReader reads and checks the FLV header and PreviousTagSize0.
func NewTagReader(r io.Reader) (*TagReader, error) {
	fr, err := origin.NewFLVReader(r)
	if err != nil {
		return nil, err
	}
	return &TagReader{fr}, nil
}

// Next returns the next tag; io.EOF exactly at a tag boundary.
func (tr *TagReader) Next() (Tag, error) {
	ft, err := tr.FLVReader.Next()
	if err != nil {
		return Tag{}, err
	}
	t := Tag{Type: ft.Type, Timestamp: ft.Timestamp, Body: ft.Body}
	body, size := ft.Body, len(ft.Body)
	switch t.Type {
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

// VideoSpan is the time from the stream's first video frame to its last,
// by their timestamps (sequence headers left out).
func (s *Stream) VideoSpan() time.Duration {
	var first, last uint32
	seen := false
	for _, t := range s.Tags {
		if t.Type == 9 && !t.SeqHeader {
			if !seen {
				first, seen = t.Timestamp, true
			}
			last = t.Timestamp
		}
	}
	return time.Duration(last-first) * time.Millisecond
}
