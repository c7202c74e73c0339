//
// Copyright (c) 2018- yutopp (yutopp@gmail.com)
//
// Distributed under the Boost Software License, Version 1.0. (See accompanying
// file LICENSE_1_0.txt or copy at  https://www.boost.org/LICENSE_1_0.txt)
//

package rtmp

import (
	"io"

	"github.com/yutopp/go-rtmp/internal"
	"github.com/yutopp/go-rtmp/message"
)

var _ stateHandler = (*serverDataPublishHandler)(nil)

// serverDataPublishHandler Handle data messages from a publisher at server side.
//
//	transitions:
//	  | _ -> self
type serverDataPublishHandler struct {
	sh *streamHandler
}

func (h *serverDataPublishHandler) onMessage(
	chunkStreamID int,
	timestamp uint32,
	msg message.Message,
) error {
	switch msg := msg.(type) {
	case *message.AudioMessage:
		return h.sh.stream.userHandler().OnAudio(timestamp, msg.Payload)

	case *message.VideoMessage:
		return h.sh.stream.userHandler().OnVideo(timestamp, msg.Payload)

	// flvgw: an aggregate message goes to a handler with an
	// OnAggregate(timestamp uint32, payload io.Reader) error method, which
	// splits it into the audio, video and data it carries; a handler
	// without one gets it as an unknown message.
	case *message.AggregateMessage:
		if a, ok := h.sh.stream.userHandler().(interface {
			OnAggregate(uint32, io.Reader) error
		}); ok {
			return a.OnAggregate(timestamp, msg.Payload)
		}
		return internal.ErrPassThroughMsg

	default:
		return internal.ErrPassThroughMsg
	}
}

func (h *serverDataPublishHandler) onData(
	chunkStreamID int,
	timestamp uint32,
	dataMsg *message.DataMessage,
	body interface{},
) error {
	switch data := body.(type) {
	case *message.NetStreamSetDataFrame:
		return h.sh.stream.userHandler().OnSetDataFrame(timestamp, data)

	default:
		return internal.ErrPassThroughMsg
	}
}

func (h *serverDataPublishHandler) onCommand(
	chunkStreamID int,
	timestamp uint32,
	cmdMsg *message.CommandMessage,
	body interface{},
) error {
	// flvgw: closeStream ends the publish on this stream; the stream stays,
	// inactive, and may publish again. A handler with an
	// OnCloseStream(streamID uint32) error method is told. v0.0.7 ignored
	// it: the publish went on, fed by nobody, until the connection closed
	// or the stream was deleted.
	if _, ok := body.(*message.NetStreamCloseStream); ok {
		h.sh.ChangeState(streamStateServerInactive)
		if c, ok := h.sh.stream.userHandler().(interface{ OnCloseStream(uint32) error }); ok {
			return c.OnCloseStream(h.sh.stream.streamID)
		}
		return nil
	}
	return internal.ErrPassThroughMsg
}
