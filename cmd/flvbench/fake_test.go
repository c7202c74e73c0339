package main

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// fakeServer answers HTTP on 127.0.0.1 by hand: serve gets each
// connection after its request head has been read, and writes whatever
// bytes it likes. The connection is closed when serve returns.
func fakeServer(t *testing.T, serve func(c net.Conn, req *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				serve(c, req)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

// untilClosed waits for the viewer to close c.
func untilClosed(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// flvHead is an FLV header for audio and video with PreviousTagSize0.
var flvHead = []byte{'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0}

// flvTag is one FLV tag with its PreviousTagSize.
func flvTag(typ byte, ts uint32, body []byte) []byte {
	b := make([]byte, 11, 11+len(body)+4)
	b[0] = typ
	b[1], b[2], b[3] = byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
	b[4], b[5], b[6], b[7] = byte(ts>>16), byte(ts>>8), byte(ts), byte(ts>>24)
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, uint32(11+len(body)))
}

// Tag bodies: an AVC keyframe and inter frame, an AAC frame.
var (
	avcKey   = []byte{0x17, 1, 0, 0, 0, 1, 2, 3}
	avcInter = []byte{0x27, 1, 0, 0, 0, 4, 5, 6}
	aacFrame = []byte{0xaf, 1, 9, 9, 9}
)

// serveFLV answers with a short FLV stream, close-delimited, and holds
// the connection until the viewer closes it.
func serveFLV(c net.Conn, _ *http.Request) {
	_, _ = io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Type: video/x-flv\r\n\r\n")
	_, _ = c.Write(flvHead)
	_, _ = c.Write(flvTag(9, 0, avcKey))
	_, _ = c.Write(flvTag(8, 0, aacFrame))
	untilClosed(c)
}
