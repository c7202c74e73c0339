package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sirupsen/logrus"
	rtmp "github.com/yutopp/go-rtmp"
	rtmpmsg "github.com/yutopp/go-rtmp/message"
)

// Publisher publishes FLV tags to an RTMP server with go-rtmp, paced by
// their timestamps, so tests run where ffmpeg is not installed.
type Publisher struct {
	Addr   string // host:port
	App    string
	Stream string
	Tags   []Tag
	// Loop repeats Tags with timestamps carried on.
	Loop bool
	// Speed > 1 sends faster than real time; 0 means 1.
	Speed float64
}

// Run connects, publishes and sends until ctx is done, the tags run out
// (without Loop) or the server hangs up. It closes the connection on
// return, which is how the publisher "leaves".
//
// go-rtmp's client can block for good once its connection is gone: Connect
// and CreateStream wait for their answer without a timeout, and a write
// queued after its writer loop ended is never taken. So the session runs
// on a goroutine of its own, and Run returns when the session does, when
// the server hangs up (the client's read loop ended), or when ctx ends;
// a session still blocked then is left to end with the test process.
func (p *Publisher) Run(ctx context.Context) error {
	quiet := logrus.New()
	quiet.Out = io.Discard
	client, err := rtmp.Dial("rtmp", p.Addr, &rtmp.ConnConfig{Logger: quiet})
	if err != nil {
		return fmt.Errorf("publisher dial: %w", err)
	}
	defer client.Close()
	session := make(chan error, 1)
	go func() { session <- p.session(ctx, client) }()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case err := <-session:
			return err
		case <-ctx.Done():
			_ = client.Close()
			select {
			case err := <-session:
				return err // nil: the session saw ctx end
			case <-time.After(time.Second):
				return fmt.Errorf("publisher: go-rtmp still blocked a second after the connection closed: %w", ctx.Err())
			}
		case <-poll.C:
			if err := client.LastError(); err != nil {
				return fmt.Errorf("publisher: the server hung up: %w", err)
			}
		}
	}
}

// session connects, publishes and sends over client.
func (p *Publisher) session(ctx context.Context, client *rtmp.ClientConn) error {
	if err := client.Connect(&rtmpmsg.NetConnectionConnect{
		Command: rtmpmsg.NetConnectionConnectCommand{
			App: p.App, Type: "nonprivate", FlashVer: "FMLE/3.0",
			TCURL: "rtmp://" + p.Addr + "/" + p.App,
		},
	}); err != nil {
		return fmt.Errorf("publisher connect: %w", err)
	}
	stream, err := client.CreateStream(nil, 128) // any other size makes go-rtmp log to the global logrus
	if err != nil {
		return fmt.Errorf("publisher create stream: %w", err)
	}
	if err := stream.Publish(&rtmpmsg.NetStreamPublish{PublishingName: p.Stream, PublishingType: "live"}); err != nil {
		return fmt.Errorf("publisher publish: %w", err)
	}
	return p.send(ctx, stream)
}

func (p *Publisher) send(ctx context.Context, stream *rtmp.Stream) error {
	if len(p.Tags) == 0 {
		return errors.New("publisher: no tags")
	}
	speed := p.Speed
	if speed <= 0 {
		speed = 1
	}
	span := p.Tags[len(p.Tags)-1].Timestamp + 40
	start := time.Now()
	for loop := uint32(0); ; loop++ {
		for _, t := range p.Tags {
			if loop > 0 && (t.Type == 18 || t.SeqHeader) {
				continue
			}
			ts := t.Timestamp + loop*span
			due := start.Add(time.Duration(float64(ts) / speed * float64(time.Millisecond)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(d):
				}
			}
			if ctx.Err() != nil {
				return nil
			}
			if err := writeTag(stream, t, ts); err != nil {
				return fmt.Errorf("publisher write: %w", err)
			}
		}
		if !p.Loop {
			return nil
		}
	}
}

func writeTag(stream *rtmp.Stream, t Tag, ts uint32) error {
	switch t.Type {
	case 8:
		return stream.Write(4, ts, &rtmpmsg.AudioMessage{Payload: bytes.NewReader(t.Body)})
	case 9:
		return stream.Write(6, ts, &rtmpmsg.VideoMessage{Payload: bytes.NewReader(t.Body)})
	default:
		return stream.Write(8, ts, &rtmpmsg.DataMessage{
			Name: "@setDataFrame", Encoding: rtmpmsg.EncodingTypeAMF0, Body: bytes.NewReader(t.Body),
		})
	}
}
