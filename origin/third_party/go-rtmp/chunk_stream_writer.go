//
// Copyright (c) 2018- yutopp (yutopp@gmail.com)
//
// Distributed under the Boost Software License, Version 1.0. (See accompanying
// file LICENSE_1_0.txt or copy at  https://www.boost.org/LICENSE_1_0.txt)
//

package rtmp

import (
	"context"
	"errors"
	"sync"
)

// errWriterClosed: the chunk streamer's write loop has ended, after a
// failed write or the connection's close. flvgw.
var errWriterClosed = errors.New("the connection's write loop has ended")

type ChunkStreamWriter struct {
	ChunkStreamReader

	doneCh   chan struct{}
	closeCh  chan struct{}
	lastErr  error
	aqM      sync.Mutex
	newChunk bool

	// flvgw: the extended timestamp field of the last header of format 0,
	// 1 or 2, repeated by format 3 chunks while extendedTimestamp is set.
	extendedValue uint32
}

func (w *ChunkStreamWriter) Write(b []byte) (int, error) {
	return w.buf.Write(b)
}

func (w *ChunkStreamWriter) Wait(ctx context.Context) error {
	w.aqM.Lock()
	defer w.aqM.Unlock()

	select {
	case <-w.doneCh:
		if w.lastErr != nil {
			return w.lastErr
		}

		w.doneCh = make(chan struct{})
		return nil

	case <-w.closeCh:
		// flvgw: the write loop has ended; v0.0.7 returned nil here (for
		// every writer but the one that failed), and its caller queued a
		// message for a loop nobody ran.
		if w.lastErr != nil {
			return w.lastErr
		}
		return errWriterClosed

	case <-ctx.Done():
		return ctx.Err()
	}
}
