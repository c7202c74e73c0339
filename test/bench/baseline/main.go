// Command baseline stands for the unavoidable kernel cost in flvgw's
// benchmark: it plays an FLV file in real time to every HTTP client with
// the bytes flvgw would send (chunked FLV: header, sequence headers, then
// each tag), one vectored write per frame per client and nothing else: no
// pool, no GOP cache (a new client waits for the next keyframe, which
// flvbench counts as a stall), one writer goroutine per CPU. test/bench/run.sh measures
// flvgw against it.
//
// GET /delay answers the delivery delay of every write so far (from the
// moment a frame was due to the end of its write to one client) as a
// Prometheus histogram, with flvgw_delivery_delay_seconds's buckets, so
// the two are compared bucket for bucket.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"flvgw/origin"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "HTTP address (loopback)")
	file := flag.String("file", "", "FLV file to loop in real time")
	flag.Parse()
	if err := run(*listen, *file); err != nil {
		log.Fatal(err)
	}
}

type tag struct {
	data     []byte // serialized tag with PreviousTagSize
	ts       uint32
	key, seq bool
	typ      uint8
}

func load(file string) (header []byte, tags []tag, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fr, err := origin.NewFLVReader(f)
	if err != nil {
		return nil, nil, err
	}
	header = []byte{'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0}
	for {
		t, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return header, tags, nil
		}
		if err != nil {
			return nil, nil, err
		}
		b := t.Body
		tg := tag{ts: t.Timestamp, typ: t.Type}
		switch t.Type {
		case 9:
			tg.seq = b[0]&0x0f == 7 && b[1] == 0
			tg.key = b[0]>>4 == 1 && !tg.seq
		case 8:
			tg.seq = b[0]>>4 == 10 && b[1] == 0
		}
		tg.data = serialize(t.Type, t.Timestamp, b)
		tags = append(tags, tg)
	}
}

func serialize(typ uint8, ts uint32, body []byte) []byte {
	n := len(body)
	d := make([]byte, 11+n+4)
	d[0] = typ
	d[1], d[2], d[3] = byte(n>>16), byte(n>>8), byte(n)
	d[4], d[5], d[6], d[7] = byte(ts>>16), byte(ts>>8), byte(ts), byte(ts>>24)
	copy(d[11:], body)
	binary.BigEndian.PutUint32(d[11+n:], uint32(11+n))
	return d
}

type client struct {
	conn    *net.TCPConn
	started bool // has had its keyframe
	bufs    net.Buffers
	size    [16]byte
}

func run(listen, file string) error {
	header, tags, err := load(file)
	if err != nil {
		return err
	}
	var prefix [][]byte // header and sequence headers for a new client
	prefix = append(prefix, header)
	for _, t := range tags {
		if t.seq || t.typ == 18 {
			prefix = append(prefix, t.data)
		}
	}
	delays := &histogram{}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	log.Printf("baseline listening on %s", ln.Addr())
	var mu sync.Mutex
	var joined []*client
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				br := bufio.NewReader(c)
				first := ""
				for { // read the request head
					line, err := br.ReadString('\n')
					if err != nil {
						c.Close()
						return
					}
					if first == "" {
						first = line
					}
					if line == "\r\n" {
						break
					}
				}
				if strings.HasPrefix(first, "GET /delay ") {
					body := delays.text()
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
					c.Close()
					return
				}
				cl := &client{conn: c.(*net.TCPConn)}
				head := "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
				if _, err := io.WriteString(c, head); err != nil {
					c.Close()
					return
				}
				if err := cl.write(prefix); err != nil {
					c.Close()
					return
				}
				mu.Lock()
				joined = append(joined, cl)
				mu.Unlock()
			}()
		}
	}()

	// Clients are sharded over one writer goroutine per CPU; each frame
	// (the tags due at the same millisecond) is one vectored write per
	// client.
	shards := make([]chan frameDue, runtime.GOMAXPROCS(0))
	for i := range shards {
		shards[i] = make(chan frameDue, 64)
		go writer(shards[i], &mu, &joined, i, len(shards), delays)
	}
	var span uint32
	for _, t := range tags {
		span = max(span, t.ts)
	}
	span += 40
	start := time.Now()
	var frame [][]byte
	var frameTS uint32
	flush := func() {
		if len(frame) == 0 {
			return
		}
		due := start.Add(time.Duration(frameTS) * time.Millisecond)
		time.Sleep(time.Until(due))
		for _, ch := range shards {
			ch <- frameDue{bufs: frame, due: due}
		}
		frame = nil
	}
	for loop := uint32(0); ; loop++ {
		for _, t := range tags {
			if t.seq || t.typ == 18 {
				continue
			}
			ts := t.ts + loop*span
			if ts != frameTS {
				flush()
				frameTS = ts
			}
			data := t.data
			if loop > 0 {
				data = serialize(t.typ, ts, data[11:len(data)-4])
			}
			if t.typ == 9 && t.key {
				frame = append(frame, keyMark)
			}
			frame = append(frame, data)
		}
	}
}

// keyMark flags the next buffer of a frame as a keyframe (never written).
var keyMark = []byte{}

// frameDue is one frame and the moment it was due.
type frameDue struct {
	bufs [][]byte
	due  time.Time
}

// delayBounds are flvgw_delivery_delay_seconds's bucket bounds.
var delayBounds = []float64{.0001, .00025, .0005, .001, .0025, .005, .0075, .01, .015, .02, .025, .05, .1, .25, .5, 1, 2.5, 5}

// histogram counts delivery delays in delayBounds (last: +Inf).
type histogram struct {
	counts [19]atomic.Uint64
}

func (h *histogram) observe(d time.Duration) {
	i := sort.SearchFloat64s(delayBounds, d.Seconds())
	h.counts[i].Add(1)
}

// text renders the histogram in Prometheus' text format, cumulative.
func (h *histogram) text() string {
	var b strings.Builder
	var sum uint64
	for i := range h.counts {
		sum += h.counts[i].Load()
		le := "+Inf"
		if i < len(delayBounds) {
			le = strconv.FormatFloat(delayBounds[i], 'g', -1, 64)
		}
		fmt.Fprintf(&b, "baseline_delivery_delay_seconds_bucket{le=%q} %d\n", le, sum)
	}
	return b.String()
}

// writer owns the clients of one shard (every n-th joined client).
func writer(frames <-chan frameDue, mu *sync.Mutex, joined *[]*client, shard, n int, delays *histogram) {
	var clients []*client
	var seen int
	for fd := range frames {
		frame := fd.bufs
		mu.Lock()
		for ; seen < len(*joined); seen++ {
			if seen%n == shard {
				clients = append(clients, (*joined)[seen])
			}
		}
		mu.Unlock()
		key := false
		bufs := frame[:0:0]
		for _, b := range frame {
			if len(b) == 0 {
				key = true
				continue
			}
			bufs = append(bufs, b)
		}
		live := clients[:0]
		for _, c := range clients {
			if !c.started && !key {
				live = append(live, c)
				continue
			}
			c.started = true
			if err := c.write(bufs); err != nil {
				c.conn.Close()
				continue
			}
			delays.observe(time.Since(fd.due))
			live = append(live, c)
		}
		clients = live
	}
}

var crlf = []byte("\r\n")

// write sends bufs as one chunk with one vectored write.
func (c *client) write(bufs [][]byte) error {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	line := strconv.AppendInt(c.size[:0], int64(n), 16)
	line = append(line, '\r', '\n')
	c.bufs = append(c.bufs[:0], line)
	c.bufs = append(c.bufs, bufs...)
	c.bufs = append(c.bufs, crlf)
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.bufs.WriteTo(c.conn)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
