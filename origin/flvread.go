package origin

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	flv "github.com/yutopp/go-flv"

	"flvgw/pool"
)

// ErrMalformedFLV reports bytes that are not a well-formed FLV stream.
// It wraps pool.ErrBadTag, so the pool never reconnects to such a source.
var ErrMalformedFLV = fmt.Errorf("origin: malformed FLV (%w)", pool.ErrBadTag)

// maxFLVTag bounds a tag body read from an upstream.
const maxFLVTag = 8 << 20

// FLVReader reads an FLV byte stream tag by tag and checks every
// structural rule: the header, each tag's type, size and stream id, and
// each PreviousTagSize.
type FLVReader struct {
	r      *bufio.Reader
	Header flv.Header
	// AllowEmpty takes a tag of no bytes (DataSize 0), which FLV does not
	// forbid, as one with an empty Body; otherwise it is malformed. A
	// pull sets it, and drops such a tag as it drops an empty RTMP
	// message; the tests' strict reader does not.
	AllowEmpty bool
	n          int64
	hdr        [11]byte
}

// FLVTag is one tag read by FLVReader. Body is freshly allocated.
type FLVTag struct {
	Type      uint8
	Timestamp uint32
	Body      []byte
}

// NewFLVReader reads and checks the FLV header and PreviousTagSize0.
func NewFLVReader(r io.Reader) (*FLVReader, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	var head [flv.HeaderLength + 4]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		return nil, fmt.Errorf("FLV header: %w", unexpected(err)) // cut short: not malformed
	}
	h, err := flv.DecodeFlvHeader(bytes.NewReader(head[:flv.HeaderLength]))
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrMalformedFLV, err)
	}
	if h.DataOffset != flv.HeaderLength {
		return nil, fmt.Errorf("%w: data offset %d", ErrMalformedFLV, h.DataOffset)
	}
	if v := binary.BigEndian.Uint32(head[flv.HeaderLength:]); v != 0 {
		return nil, fmt.Errorf("%w: PreviousTagSize0 is %d", ErrMalformedFLV, v)
	}
	return &FLVReader{r: br, Header: *h, n: int64(len(head))}, nil
}

// Next returns the next tag: io.EOF exactly at a tag boundary, an error
// wrapping ErrMalformedFLV for a broken structure, or the read error
// (wrapped) for a stream cut inside a tag.
func (fr *FLVReader) Next() (FLVTag, error) {
	hdr := fr.hdr[:]
	n, err := io.ReadFull(fr.r, hdr)
	if err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return FLVTag{}, io.EOF
		}
		return FLVTag{}, fmt.Errorf("tag header at byte %d: %w", fr.n, unexpected(err))
	}
	typ := hdr[0]
	if typ != 8 && typ != 9 && typ != 18 {
		return FLVTag{}, fmt.Errorf("%w: tag type %d at byte %d", ErrMalformedFLV, typ, fr.n)
	}
	size := int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	ts := uint32(hdr[4])<<16 | uint32(hdr[5])<<8 | uint32(hdr[6]) | uint32(hdr[7])<<24
	switch {
	case hdr[8] != 0 || hdr[9] != 0 || hdr[10] != 0:
		return FLVTag{}, fmt.Errorf("%w: stream id not 0 at byte %d", ErrMalformedFLV, fr.n)
	case size == 0 && !fr.AllowEmpty:
		return FLVTag{}, fmt.Errorf("%w: empty tag at byte %d", ErrMalformedFLV, fr.n)
	case size > maxFLVTag:
		return FLVTag{}, fmt.Errorf("%w: tag of %d bytes at byte %d", ErrMalformedFLV, size, fr.n)
	}
	body := make([]byte, size+4)
	if _, err := io.ReadFull(fr.r, body); err != nil {
		return FLVTag{}, fmt.Errorf("tag body at byte %d: %w", fr.n, unexpected(err))
	}
	if prev := binary.BigEndian.Uint32(body[size:]); int(prev) != size+11 {
		return FLVTag{}, fmt.Errorf("%w: PreviousTagSize %d, want %d at byte %d", ErrMalformedFLV, prev, size+11, fr.n)
	}
	fr.n += int64(11 + size + 4)
	return FLVTag{Type: typ, Timestamp: ts, Body: body[:size:size]}, nil
}

// Offset is the number of bytes read so far.
func (fr *FLVReader) Offset() int64 { return fr.n }

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
