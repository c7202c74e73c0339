package origin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	amf0 "github.com/yutopp/go-amf0"

	"flvgw/pool"
)

// pullHTTPFLV plays /{app}/{stream}.flv (with query, if not empty) from
// an HTTP-FLV upstream (another flvgw, SRS, nginx-http-flv) over conn; the
// request, the response head and the first tag are due by firstBy.
func pullHTTPFLV(conn net.Conn, u target, app, stream, query string, firstBy time.Time, relay *tagRelay) error {
	if err := conn.SetDeadline(firstBy); err != nil {
		return err
	}
	path := "/" + app + "/" + stream + ".flv"
	if query != "" {
		path += "?" + query
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.host +
		"\r\nUser-Agent: flvgw\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return fmt.Errorf("%w: %w", pool.ErrUpstreamUnreachable, err)
	}
	head := &headLimit{r: conn, left: maxResponseHead}
	resp, err := http.ReadResponse(bufio.NewReader(head), nil)
	if err != nil {
		if head.left == 0 {
			return fmt.Errorf("%w: response head over %d bytes", ErrMalformedFLV, maxResponseHead)
		}
		return fmt.Errorf("%w: response: %w", pool.ErrUpstreamUnreachable, boundedError{err})
	}
	head.left = -1 // the body is the FLV reader's to bound
	// Close the connection before the body: closing an unfinished body
	// would drain it until the upstream's next silence.
	defer func() {
		_ = conn.Close()
		_ = resp.Body.Close()
	}()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: HTTP %s", pool.ErrUpstreamNotFound, bounded(resp.Status))
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: HTTP %s", pool.ErrUpstreamUnreachable, bounded(resp.Status))
	}
	fr, err := NewFLVReader(resp.Body)
	if err != nil {
		return err
	}
	fr.AllowEmpty = true // dropped by relay.write, as an empty RTMP message is
	for {
		t, err := fr.Next()
		if err != nil {
			return err
		}
		if err := relay.write(t.Type, t.Timestamp, t.Body); err != nil {
			return err
		}
	}
}

// maxResponseHead bounds an HTTP-FLV upstream's status line and headers
// (net/http reads them without a bound).
const maxResponseHead = 64 << 10

// headLimit reads at most left bytes from r, then reports io.EOF; a
// negative left is no limit.
type headLimit struct {
	r    io.Reader
	left int
}

func (h *headLimit) Read(p []byte) (int, error) {
	if h.left < 0 {
		return h.r.Read(p)
	}
	if h.left == 0 {
		return 0, io.EOF
	}
	n, err := h.r.Read(p[:min(len(p), h.left)])
	h.left -= n
	return n, err
}

// pullRTMP plays app/stream (its play name stream?query, with query if
// not empty) from an RTMP upstream over conn: the handshake, the play and
// the first tag are due by firstBy, and each write within writeFor.
func pullRTMP(conn net.Conn, u target, app, stream, query string, firstBy time.Time, writeFor time.Duration, relay *tagRelay) error {
	p, err := dialRTMP(conn, app, "rtmp://"+u.host+"/"+app, firstBy, writeFor)
	if err != nil {
		if errors.Is(err, ErrMalformedRTMP) {
			return err
		}
		return fmt.Errorf("%w: %w", pool.ErrUpstreamUnreachable, err)
	}
	name := stream
	if query != "" {
		name += "?" + query
	}
	if err := p.play(name); err != nil {
		return fmt.Errorf("%w: play: %w", pool.ErrUpstreamUnreachable, err)
	}
	for {
		msg, err := p.readMessage()
		if err != nil {
			return err
		}
		switch msg.typeID {
		case msgAudio:
			err = relay.write(pool.TagAudio, msg.timestamp, msg.payload)
		case msgVideo:
			err = relay.write(pool.TagVideo, msg.timestamp, msg.payload)
		case msgDataAMF0, msgDataAMF3:
			if body := metadataBody(msg); body != nil {
				err = relay.write(pool.TagScript, msg.timestamp, body)
			}
		case msgAggregate:
			err = relayAggregate(msg, relay)
		case msgCommandAMF0, msgCommandAMF3:
			err = onStatus(msg, relay.produced)
		}
		if err != nil {
			return err
		}
	}
}

// errUpstreamEnded: the upstream said the stream stopped.
var errUpstreamEnded = errors.New("upstream stream ended")

// onStatus turns a play status into an error where it ends the pull. An
// _error answer refuses the play as plainly as NetStream.Play.Failed (the
// play is the only command still waiting for an answer).
func onStatus(msg rtmpMessage, produced bool) error {
	name, _, args, err := decodeCommand(msg)
	if err != nil {
		return err
	}
	switch name {
	case "_error":
		return fmt.Errorf("%w: play refused: %q", pool.ErrUpstreamNotFound, bounded(statusCode(args)))
	case "onStatus":
	default:
		return nil
	}
	switch code := bounded(statusCode(args)); code {
	case "NetStream.Play.StreamNotFound", "NetStream.Play.Failed":
		return fmt.Errorf("%w: %s", pool.ErrUpstreamNotFound, code)
	case "NetStream.Play.UnpublishNotify", "NetStream.Play.Stop", "NetStream.Play.Complete":
		if !produced {
			return fmt.Errorf("%w: %s", pool.ErrUpstreamNotFound, code)
		}
		return fmt.Errorf("%w: %s", errUpstreamEnded, code)
	}
	return nil
}

// metadataBody returns the FLV script body of an onMetaData data message
// (also when sent as @setDataFrame), or nil for other data messages.
func metadataBody(msg rtmpMessage) []byte {
	payload := msg.payload
	if msg.typeID == msgDataAMF3 && len(payload) > 0 {
		payload = payload[1:]
	}
	return metadataPayload(payload)
}

// metadataPayload returns the FLV script body of an onMetaData data
// message's AMF0 payload (also when sent as @setDataFrame), or nil for
// other data.
func metadataPayload(payload []byte) []byte {
	r := bytes.NewReader(payload)
	var name string
	if err := amf0.NewDecoder(r).Decode(&name); err != nil {
		return nil
	}
	switch name {
	case "onMetaData":
		return payload
	case "@setDataFrame":
		return payload[len(payload)-r.Len():]
	}
	return nil
}

// relayAggregate relays the tags of an aggregate message.
func relayAggregate(msg rtmpMessage, relay *tagRelay) error {
	return relayAggregateTags(msg.timestamp, msg.payload, relay.write)
}
