package pool

import (
	"bytes"
	"encoding/binary"
	"fmt"

	flv "github.com/yutopp/go-flv"
	flvtag "github.com/yutopp/go-flv/tag"
)

// FLV tag types as they appear in a tag header.
const (
	TagAudio  uint8 = 8
	TagVideo  uint8 = 9
	TagScript uint8 = 18
)

const (
	tagHeaderLen  = 11
	prevSizeLen   = 4
	maxTagBodyLen = 1<<24 - 1
)

// Tag is one FLV tag, serialized once when it enters an entry and then
// shared, read-only, by every viewer of that entry.
type Tag struct {
	// Data is the complete tag as it goes on the wire: the 11-byte tag
	// header, the body and the 4-byte PreviousTagSize that follows it.
	// It is never written again after the tag is published.
	Data []byte
	// Arrival is when the tag reached the entry (Unix nanoseconds), for
	// the lag policy and the delivery delay.
	Arrival   int64
	Timestamp uint32
	Type      uint8
	// Keyframe is set on video tags that start a GOP.
	Keyframe bool
	// SeqHeader is set on codec configuration tags (AVC/HEVC decoder
	// configuration, AAC AudioSpecificConfig).
	SeqHeader bool
	// seq is the tag's sequence number in its entry's ring.
	seq uint64
}

// Body returns the tag body (without tag header and trailing size).
func (t *Tag) Body() []byte {
	if len(t.Data) < tagHeaderLen+prevSizeLen {
		return nil
	}
	return t.Data[tagHeaderLen : len(t.Data)-prevSizeLen]
}

// ErrBadTag reports a tag that cannot be relayed. Sources wrap it for any
// malformed input, which ends an entry without a reconnect.
var ErrBadTag = fmt.Errorf("pool: malformed tag")

// NewTag serializes a tag of the given type, timestamp and body into fresh
// bytes and classifies it. body is copied; the caller may reuse it.
func NewTag(typ uint8, timestamp uint32, body []byte) (Tag, error) {
	data, err := serialize(typ, timestamp, body)
	if err != nil {
		return Tag{}, err
	}
	t := Tag{Data: data, Timestamp: timestamp, Type: typ}
	t.Keyframe, t.SeqHeader = classify(typ, body)
	return t, nil
}

// checkTag reports, wrapping ErrBadTag, why a tag cannot be relayed.
func checkTag(typ uint8, body []byte) error {
	switch typ {
	case TagAudio, TagVideo, TagScript:
	default:
		return fmt.Errorf("%w: unknown tag type %d", ErrBadTag, typ)
	}
	if len(body) == 0 {
		return fmt.Errorf("%w: empty body", ErrBadTag)
	}
	if len(body) > maxTagBodyLen {
		return fmt.Errorf("%w: body of %d bytes", ErrBadTag, len(body))
	}
	return nil
}

func serialize(typ uint8, timestamp uint32, body []byte) ([]byte, error) {
	if err := checkTag(typ, body); err != nil {
		return nil, err
	}
	n := len(body)
	data := make([]byte, tagHeaderLen+n+prevSizeLen)
	data[0] = typ
	data[1], data[2], data[3] = byte(n>>16), byte(n>>8), byte(n)
	data[4], data[5], data[6] = byte(timestamp>>16), byte(timestamp>>8), byte(timestamp)
	data[7] = byte(timestamp >> 24)
	// data[8:11] stream id, always 0
	copy(data[tagHeaderLen:], body)
	binary.BigEndian.PutUint32(data[tagHeaderLen+n:], uint32(tagHeaderLen+n))
	return data, nil
}

// IsSequenceHeader reports whether an audio or video tag's body is a codec
// configuration (a sequence header), as an entry classifies it.
func IsSequenceHeader(typ uint8, body []byte) bool {
	if len(body) == 0 {
		return false
	}
	_, seq := classify(typ, body)
	return seq
}

// classify reads the codec bytes of a body. It understands the legacy FLV
// codec headers (AVC, AAC) and the enhanced-RTMP extended video header
// (HEVC, AV1, VP9 by FourCC).
func classify(typ uint8, body []byte) (keyframe, seqHeader bool) {
	switch typ {
	case TagVideo:
		b := body[0]
		frameType := (b >> 4) & 0x07
		keyframe = frameType == 1
		if frameType == 5 {
			// A video info / command frame (seeking's start or end): its
			// next byte is a command, not a packet type. No media.
			return false, false
		}
		if b&0x80 != 0 { // enhanced RTMP: IsExHeader
			packetType := b & 0x0f
			seqHeader = packetType == 0 // PacketTypeSequenceStart
			return keyframe && !seqHeader, seqHeader
		}
		codecID := b & 0x0f
		if (codecID == 7 || codecID == 12) && len(body) > 1 { // AVC, HEVC (legacy id)
			seqHeader = body[1] == 0
		}
		return keyframe && !seqHeader, seqHeader
	case TagAudio:
		format := body[0] >> 4
		if format == 10 && len(body) > 1 { // AAC
			return false, body[1] == 0
		}
	}
	return false, false
}

// Tracks says which media an entry carries; it decides the FLV header flags.
type Tracks struct {
	Audio bool
	Video bool
}

// Header returns the FLV file header for these tracks followed by
// PreviousTagSize0.
func (tr Tracks) Header() []byte {
	var flags flv.Flags
	if tr.Audio {
		flags |= flv.FlagsAudio
	}
	if tr.Video {
		flags |= flv.FlagsVideo
	}
	var buf bytes.Buffer
	// Writing to a bytes.Buffer cannot fail.
	_ = flv.EncodeFlvHeader(&buf, &flv.Header{Version: 1, Flags: flags, DataOffset: flv.HeaderLength})
	buf.Write([]byte{0, 0, 0, 0})
	return buf.Bytes()
}

// metadataTracks reads onMetaData and reports the tracks it declares. ok is
// false when the script tag is not onMetaData or declares nothing.
func metadataTracks(body []byte) (tr Tracks, ok bool) {
	var script flvtag.ScriptData
	if err := flvtag.DecodeScriptData(bytes.NewReader(body), &script); err != nil {
		return Tracks{}, false
	}
	meta, found := script.Objects["onMetaData"]
	if !found {
		return Tracks{}, false
	}
	_, tr.Video = meta["videocodecid"]
	_, tr.Audio = meta["audiocodecid"]
	if v, isBool := meta["hasVideo"].(bool); isBool {
		tr.Video = v
	}
	if v, isBool := meta["hasAudio"].(bool); isBool {
		tr.Audio = v
	}
	return tr, tr.Audio || tr.Video
}

// videoCodec names the codec of a video sequence header.
func videoCodec(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	if body[0]&0x80 != 0 && len(body) >= 5 { // enhanced RTMP FourCC
		switch string(body[1:5]) {
		case "hvc1":
			return "hevc"
		case "av01":
			return "av1"
		case "vp09":
			return "vp9"
		case "avc1":
			return "h264"
		}
		return string(body[1:5])
	}
	switch body[0] & 0x0f {
	case 7:
		return "h264"
	case 12:
		return "hevc"
	}
	return fmt.Sprintf("codec-%d", body[0]&0x0f)
}

// audioCodec names the sound format of an audio tag.
func audioCodec(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	switch body[0] >> 4 {
	case 10:
		return "aac"
	case 2, 14:
		return "mp3"
	case 11:
		return "speex"
	case 7, 8:
		return "g711"
	case 13:
		return "opus"
	}
	return fmt.Sprintf("format-%d", body[0]>>4)
}

// metadataSize reads width and height from onMetaData, 0 if absent.
func metadataSize(body []byte) (w, h int) {
	var script flvtag.ScriptData
	if err := flvtag.DecodeScriptData(bytes.NewReader(body), &script); err != nil {
		return 0, 0
	}
	meta := script.Objects["onMetaData"]
	fw, _ := meta["width"].(float64)
	fh, _ := meta["height"].(float64)
	return int(fw), int(fh)
}
