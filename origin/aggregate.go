package origin

import (
	"fmt"

	"flvgw/pool"
)

// aggregateTagHeader and aggregatePrevSize frame each FLV tag of an RTMP
// aggregate message (type 22): its 11-byte header (type, size, timestamp
// with its extended byte, stream id), its body, then its 4-byte previous
// tag size.
const (
	aggregateTagHeader = 11
	aggregatePrevSize  = 4
)

// splitAggregate calls tag with each FLV tag of an aggregate message's
// payload, in order. A sub-tag's timestamp counts from the first
// sub-tag's, and the message's own timestamp ts is where the first one
// plays: each goes out at ts plus its offset from the first, as
// nginx-rtmp and SRS read them. A sub-tag of any type is passed on; the
// caller keeps those it relays.
//
// A payload whose framing is broken (a sub-tag header cut short, a
// sub-tag whose body and previous tag size run past the message's end)
// is ErrMalformedRTMP, found before any of its tags is passed on.
func splitAggregate(ts uint32, payload []byte, tag func(typ uint8, ts uint32, body []byte) error) error {
	for off := 0; off < len(payload); {
		b := payload[off:]
		if len(b) < aggregateTagHeader {
			return fmt.Errorf("%w: aggregate message of %d bytes: a sub-tag header at byte %d is cut short at %d bytes",
				ErrMalformedRTMP, len(payload), off, len(b))
		}
		size := aggregateTagSize(b)
		if end := aggregateTagHeader + size + aggregatePrevSize; len(b) < end {
			return fmt.Errorf("%w: aggregate message of %d bytes: the sub-tag at byte %d (a body of %d bytes, then its previous tag size) runs %d bytes past the message's end",
				ErrMalformedRTMP, len(payload), off, size, end-len(b))
		}
		off += aggregateTagHeader + size + aggregatePrevSize
	}
	var base uint32
	for b, first := payload, true; len(b) > 0; first = false {
		size := aggregateTagSize(b)
		subTS := uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6]) | uint32(b[7])<<24
		if first {
			base = subTS
		}
		if err := tag(b[0], ts+(subTS-base), b[aggregateTagHeader:aggregateTagHeader+size]); err != nil {
			return err
		}
		b = b[aggregateTagHeader+size+aggregatePrevSize:]
	}
	return nil
}

// aggregateTagSize is the body size in the sub-tag header that b starts
// with.
func aggregateTagSize(b []byte) int {
	return int(b[1])<<16 | int(b[2])<<8 | int(b[3])
}

// relayAggregateTags passes the tags of an aggregate message to write as
// the messages they stand for would be: audio and video as they are,
// onMetaData (bare or sent as @setDataFrame) as the stream's metadata;
// other script tags are dropped, as other data messages are.
func relayAggregateTags(ts uint32, payload []byte, write func(typ uint8, ts uint32, body []byte) error) error {
	return splitAggregate(ts, payload, func(typ uint8, ts uint32, body []byte) error {
		switch typ {
		case pool.TagAudio, pool.TagVideo:
			return write(typ, ts, body)
		case pool.TagScript:
			if meta := metadataPayload(body); meta != nil {
				return write(pool.TagScript, ts, meta)
			}
		}
		return nil
	})
}
