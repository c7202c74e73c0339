package origin

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	amf0 "github.com/yutopp/go-amf0"
	"github.com/yutopp/go-rtmp/handshake"

	"flvgw/pool"
)

// RTMP message type ids.
const (
	msgSetChunkSize   = 1
	msgAbort          = 2
	msgAck            = 3
	msgUserControl    = 4
	msgWindowAckSize  = 5
	msgPeerBandwidth  = 6
	msgAudio          = 8
	msgVideo          = 9
	msgDataAMF3       = 15
	msgCommandAMF3    = 17
	msgDataAMF0       = 18
	msgCommandAMF0    = 20
	msgAggregate      = 22
	maxMessageLen     = 8 << 20           // larger is refused as malformed
	maxChunkStreams   = 64                // distinct chunk stream ids a peer may use
	maxPendingBytes   = 2 * maxMessageLen // of messages begun, across chunk streams
	maxMessageStreams = 8                 // per origin connection, the control stream among them
	minAckWindow      = 64 << 10          // a peer's smaller Window Acknowledgement Size counts as this
	maxChunkSize      = 1 << 24
	defaultChunkSize  = 128
	clientAckWindow   = 2500000
	commandChunkID    = 3
	mediaStreamChunk  = 8
	userControlPing   = 6
	userControlPong   = 7
	userControlBuffer = 3
)

// ErrMalformedRTMP reports RTMP input that breaks the protocol; the pull
// that read it ends instead of retrying (it wraps pool.ErrBadTag).
var ErrMalformedRTMP = fmt.Errorf("origin: malformed RTMP (%w)", pool.ErrBadTag)

// rtmpMessage is one reassembled RTMP message.
type rtmpMessage struct {
	typeID    uint8
	streamID  uint32
	timestamp uint32
	payload   []byte
}

type chunkState struct {
	timestamp uint32
	delta     uint32
	length    uint32
	typeID    uint8
	streamID  uint32
	extended  bool
	started   bool
	buf       []byte
}

// chunkReader reassembles messages from an RTMP chunk stream, checking
// every bound so that a broken or hostile peer only ends its own session.
type chunkReader struct {
	r         *bufio.Reader
	chunkSize uint32
	streams   map[uint32]*chunkState
	read      uint64
	pending   int // bytes of messages begun and not complete, all streams
	scratch   [11]byte
}

func newChunkReader(r io.Reader) *chunkReader {
	return &chunkReader{r: bufio.NewReaderSize(r, 64*1024), chunkSize: defaultChunkSize, streams: make(map[uint32]*chunkState)}
}

func (cr *chunkReader) readFull(b []byte) error {
	n, err := io.ReadFull(cr.r, b)
	cr.read += uint64(n)
	return err
}

// next returns the next complete message. Protocol control messages that
// concern the reader (set chunk size, abort) are applied and also returned.
func (cr *chunkReader) next() (rtmpMessage, error) {
	for {
		b := cr.scratch[:1]
		if err := cr.readFull(b); err != nil {
			return rtmpMessage{}, err
		}
		fmtType := b[0] >> 6
		csid := uint32(b[0] & 0x3f)
		switch csid {
		case 0:
			if err := cr.readFull(cr.scratch[:1]); err != nil {
				return rtmpMessage{}, err
			}
			csid = 64 + uint32(cr.scratch[0])
		case 1:
			if err := cr.readFull(cr.scratch[:2]); err != nil {
				return rtmpMessage{}, err
			}
			csid = 64 + uint32(cr.scratch[0]) + uint32(cr.scratch[1])<<8
		}
		st := cr.streams[csid]
		if st == nil {
			if len(cr.streams) >= maxChunkStreams {
				return rtmpMessage{}, fmt.Errorf("%w: more than %d chunk streams", ErrMalformedRTMP, maxChunkStreams)
			}
			if fmtType != 0 {
				return rtmpMessage{}, fmt.Errorf("%w: chunk stream %d starts with format %d", ErrMalformedRTMP, csid, fmtType)
			}
			st = &chunkState{}
			cr.streams[csid] = st
		}
		if err := cr.readHeader(st, fmtType); err != nil {
			return rtmpMessage{}, err
		}
		if st.length > maxMessageLen {
			return rtmpMessage{}, fmt.Errorf("%w: message of %d bytes", ErrMalformedRTMP, st.length)
		}
		want := min(st.length-uint32(len(st.buf)), cr.chunkSize)
		if cr.pending += int(want); cr.pending > maxPendingBytes {
			return rtmpMessage{}, fmt.Errorf("%w: over %d bytes of unfinished messages", ErrMalformedRTMP, maxPendingBytes)
		}
		start := len(st.buf)
		st.buf = append(st.buf, make([]byte, want)...)
		if err := cr.readFull(st.buf[start:]); err != nil {
			return rtmpMessage{}, err
		}
		if uint32(len(st.buf)) < st.length {
			continue
		}
		msg := rtmpMessage{typeID: st.typeID, streamID: st.streamID, timestamp: st.timestamp, payload: st.buf}
		cr.pending -= len(st.buf)
		st.buf = nil
		st.started = false
		switch msg.typeID {
		case msgSetChunkSize:
			if len(msg.payload) < 4 {
				return rtmpMessage{}, fmt.Errorf("%w: short set chunk size", ErrMalformedRTMP)
			}
			size := binary.BigEndian.Uint32(msg.payload) & 0x7fffffff
			if size < 1 || size > maxChunkSize {
				return rtmpMessage{}, fmt.Errorf("%w: chunk size %d", ErrMalformedRTMP, size)
			}
			cr.chunkSize = size
		case msgAbort:
			if len(msg.payload) >= 4 {
				if s := cr.streams[binary.BigEndian.Uint32(msg.payload)]; s != nil {
					cr.pending -= len(s.buf)
					s.buf, s.started = nil, false
				}
			}
		}
		return msg, nil
	}
}

// readHeader reads a chunk's message header of format fmtType into st.
func (cr *chunkReader) readHeader(st *chunkState, fmtType uint8) error {
	sizes := [4]int{11, 7, 3, 0}
	h := cr.scratch[:sizes[fmtType]]
	if err := cr.readFull(h); err != nil {
		return err
	}
	continuing := len(st.buf) > 0
	if continuing && fmtType != 3 {
		return fmt.Errorf("%w: format %d chunk inside a message", ErrMalformedRTMP, fmtType)
	}
	var field uint32
	if fmtType < 3 {
		field = uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])
		st.extended = field == 0xffffff
	}
	if fmtType <= 1 {
		st.length = uint32(h[3])<<16 | uint32(h[4])<<8 | uint32(h[5])
		st.typeID = h[6]
	}
	if fmtType == 0 {
		st.streamID = binary.LittleEndian.Uint32(h[7:11])
	}
	if st.extended {
		var ext [4]byte
		if err := cr.readFull(ext[:]); err != nil {
			return err
		}
		if fmtType < 3 {
			field = binary.BigEndian.Uint32(ext[:])
		}
	}
	switch {
	case fmtType == 0:
		st.timestamp, st.delta = field, 0
	case fmtType < 3:
		st.delta = field
		st.timestamp += field
	case !continuing:
		st.timestamp += st.delta // a new message with the previous header
	}
	return nil
}

// chunkWriter writes whole messages as format-0 chunks of outChunkSize.
type chunkWriter struct {
	w   *bufio.Writer
	hdr [16]byte
}

const outChunkSize = defaultChunkSize

// A timestamp of 0xffffff or more goes in an extended timestamp after the
// header, and again after each format 3 chunk's basic header (RTMP 1.0,
// 5.3.1.3).
func (cw *chunkWriter) write(csid uint32, typeID uint8, streamID, timestamp uint32, payload []byte) error {
	h := cw.hdr[:12]
	h[0] = byte(csid & 0x3f)
	ts := min(timestamp, 0xffffff)
	h[1], h[2], h[3] = byte(ts>>16), byte(ts>>8), byte(ts)
	n := len(payload)
	h[4], h[5], h[6] = byte(n>>16), byte(n>>8), byte(n)
	h[7] = typeID
	binary.LittleEndian.PutUint32(h[8:12], streamID)
	var ext []byte
	if ts == 0xffffff {
		ext = binary.BigEndian.AppendUint32(cw.hdr[12:12], timestamp)
	}
	if _, err := cw.w.Write(h); err != nil {
		return err
	}
	for i := 0; ; {
		if _, err := cw.w.Write(ext); err != nil {
			return err
		}
		end := min(i+outChunkSize, n)
		if _, err := cw.w.Write(payload[i:end]); err != nil {
			return err
		}
		i = end
		if i >= n {
			break
		}
		if err := cw.w.WriteByte(0xc0 | byte(csid&0x3f)); err != nil {
			return err
		}
	}
	return cw.w.Flush()
}

// rtmpPlayer is a minimal RTMP client that plays one stream.
type rtmpPlayer struct {
	conn     net.Conn
	writeFor time.Duration // each write's deadline, from its start
	cr       *chunkReader
	cw       *chunkWriter
	ackWin   uint32
	acked    uint64
	streamID uint32
}

// dialRTMP handshakes over conn and connects to app, all by the deadline
// by; each write of the session then has writeFor.
func dialRTMP(conn net.Conn, app, tcURL string, by time.Time, writeFor time.Duration) (*rtmpPlayer, error) {
	if err := conn.SetDeadline(by); err != nil {
		return nil, err
	}
	if err := handshake.HandshakeWithServer(conn, conn, &handshake.Config{}); err != nil {
		return nil, fmt.Errorf("rtmp handshake: %w", err)
	}
	p := &rtmpPlayer{conn: conn, writeFor: writeFor, cr: newChunkReader(conn), cw: &chunkWriter{w: bufio.NewWriter(conn)}}
	if err := p.command(0, "connect", 1, map[string]any{
		"app": app, "flashVer": "LNX 9,0,124,2", "tcUrl": tcURL, "fpad": false,
		"capabilities": 15.0, "audioCodecs": 4071.0, "videoCodecs": 252.0, "videoFunction": 1.0,
	}); err != nil {
		return nil, err
	}
	if err := p.control(msgWindowAckSize, u32(clientAckWindow)); err != nil {
		return nil, err
	}
	if _, err := p.awaitResult(1); err != nil {
		return nil, fmt.Errorf("rtmp connect: %w", err)
	}
	if err := p.command(0, "createStream", 2, nil); err != nil {
		return nil, err
	}
	res, err := p.awaitResult(2)
	if err != nil {
		return nil, fmt.Errorf("rtmp createStream: %w", err)
	}
	id, ok := res.(float64)
	if !ok {
		return nil, fmt.Errorf("%w: createStream result %s", ErrMalformedRTMP, bounded(fmt.Sprint(res)))
	}
	p.streamID = uint32(id)
	return p, nil
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func (p *rtmpPlayer) control(typeID uint8, payload []byte) error {
	return p.write(2, typeID, 0, payload)
}

// write sends one message within writeFor from now. The deadline is set
// per write: the one dialRTMP set for the whole setup would have passed
// by the first acknowledgement or pong a long pull owes its upstream.
func (p *rtmpPlayer) write(csid uint32, typeID uint8, streamID uint32, payload []byte) error {
	if err := p.conn.SetWriteDeadline(time.Now().Add(p.writeFor)); err != nil {
		return err
	}
	return p.cw.write(csid, typeID, streamID, 0, payload)
}

// command sends an AMF0 command; the transaction's args follow the name
// and the transaction id (nil is written as AMF null).
func (p *rtmpPlayer) command(streamID uint32, name string, txn float64, args ...any) error {
	var buf bytes.Buffer
	enc := amf0.NewEncoder(&buf)
	for _, v := range append([]any{name, txn}, args...) {
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("rtmp encode %s: %w", name, err)
		}
	}
	csid := uint32(commandChunkID)
	if streamID != 0 {
		csid = mediaStreamChunk
	}
	return p.write(csid, msgCommandAMF0, streamID, buf.Bytes())
}

// play asks for stream name on the created stream.
func (p *rtmpPlayer) play(name string) error {
	buffer := append(binary.BigEndian.AppendUint16(nil, userControlBuffer), u32(p.streamID)...)
	buffer = binary.BigEndian.AppendUint32(buffer, 1000)
	if err := p.control(msgUserControl, buffer); err != nil {
		return err
	}
	return p.command(p.streamID, "play", 0, nil, name, -1000.0)
}

// awaitResult reads until the _result (or _error) of txn, answering
// control messages on the way.
func (p *rtmpPlayer) awaitResult(txn float64) (any, error) {
	for {
		msg, err := p.readMessage()
		if err != nil {
			return nil, err
		}
		if msg.typeID != msgCommandAMF0 && msg.typeID != msgCommandAMF3 {
			continue
		}
		name, id, args, err := decodeCommand(msg)
		if err != nil {
			return nil, err
		}
		if id != txn {
			continue
		}
		switch name {
		case "_result":
			if len(args) >= 2 {
				return args[1], nil
			}
			return nil, nil
		case "_error":
			return nil, fmt.Errorf("rejected: %s", bounded(fmt.Sprint(args)))
		}
	}
}

// readMessage returns the next message, acknowledging bytes and answering
// pings as the protocol asks.
func (p *rtmpPlayer) readMessage() (rtmpMessage, error) {
	msg, err := p.cr.next()
	if err != nil {
		return msg, err
	}
	switch msg.typeID {
	case msgWindowAckSize:
		if len(msg.payload) >= 4 {
			p.ackWin = max(binary.BigEndian.Uint32(msg.payload), minAckWindow)
		}
	case msgUserControl:
		if len(msg.payload) >= 6 && binary.BigEndian.Uint16(msg.payload) == userControlPing {
			pong := append(binary.BigEndian.AppendUint16(nil, userControlPong), msg.payload[2:6]...)
			if err := p.control(msgUserControl, pong); err != nil {
				return msg, err
			}
		}
	}
	if p.ackWin > 0 && p.cr.read-p.acked >= uint64(p.ackWin) {
		p.acked = p.cr.read
		if err := p.control(msgAck, u32(uint32(p.cr.read))); err != nil {
			return msg, err
		}
	}
	return msg, nil
}

// decodeCommand splits an AMF0 (or AMF3-wrapped AMF0) command.
func decodeCommand(msg rtmpMessage) (name string, txn float64, args []any, err error) {
	payload := msg.payload
	if msg.typeID == msgCommandAMF3 && len(payload) > 0 {
		payload = payload[1:]
	}
	dec := amf0.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&name); err != nil {
		return "", 0, nil, fmt.Errorf("%w: command name: %w", ErrMalformedRTMP, err)
	}
	if err := dec.Decode(&txn); err != nil {
		return name, 0, nil, nil // onStatus and friends may carry no id
	}
	for range 8 {
		var v any
		if err := dec.Decode(&v); err != nil {
			break
		}
		args = append(args, v)
	}
	return name, txn, args, nil
}

// maxQuoted bounds what of a peer's text (an _error's arguments, a status
// code) an error quotes, and so the log: a message may be megabytes.
const maxQuoted = 256

// bounded is s, cut to maxQuoted bytes with a note of its length.
func bounded(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", strings.ToValidUTF8(s[:maxQuoted], ""), len(s))
}

// boundedError is an error whose text may quote a peer's (net/http's
// quote a response's malformed line whole), printed bounded; errors.Is
// and errors.As see the error itself.
type boundedError struct{ err error }

func (e boundedError) Error() string { return bounded(e.err.Error()) }
func (e boundedError) Unwrap() error { return e.err }

// statusCode returns the "code" of an onStatus command's info object.
func statusCode(args []any) string {
	for _, a := range args {
		switch obj := a.(type) {
		case map[string]any:
			if c, ok := obj["code"].(string); ok {
				return c
			}
		case amf0.ECMAArray:
			if c, ok := obj["code"].(string); ok {
				return c
			}
		}
	}
	return ""
}
