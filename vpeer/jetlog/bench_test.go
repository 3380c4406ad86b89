package jetlog_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/jetlog"
	"github.com/momonga-project/momonga/vpeer/vpeertest"
)

// benchPayload is about the size of a volunteer's work request.
var benchPayload = []byte("add k 1 " + string(make([]byte, 92)))

func benchLog(b *testing.B, js jetstream.JetStream, n *atomic.Int64) *jetlog.Log {
	b.Helper()
	return open(b, js, jetlog.Config{Stream: fmt.Sprintf("B%d", n.Add(1))})
}

func benchRecord(i int64) vpeer.Record {
	id := strconv.FormatInt(i, 10)
	return vpeer.Record{ID: "h-" + id, ReplyTo: "_INBOX.h." + id, Payload: benchPayload}
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkPublish is the ceiling: JetStream publishes of messages shaped
// like jetlog's records, without jetlog. It compares a synchronous publish
// at a time, synchronous publishes from many goroutines (the gateway's
// case), and one goroutine keeping a window of async publishes in flight.
func BenchmarkPublish(b *testing.B) {
	s := startServer(b, b.TempDir(), 0)
	_, js := connect(b, s)
	var streams, ids atomic.Int64
	ctx := context.Background()
	// Each run of a sub-benchmark gets its own stream and subject.
	stream := func(b *testing.B) (msg func() *nats.Msg) {
		name := fmt.Sprintf("P%d", streams.Add(1))
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name}}); err != nil {
			b.Fatal(err)
		}
		return func() *nats.Msg {
			id := strconv.FormatInt(ids.Add(1), 10)
			return &nats.Msg{Subject: name, Data: benchPayload, Header: nats.Header{
				jetstream.MsgIDHeader: {"h-" + id},
				jetlog.HeaderReplyTo:  {"_INBOX.h." + id},
			}}
		}
	}

	b.Run("sync/1", func(b *testing.B) {
		msg := stream(b)
		for b.Loop() {
			if _, err := js.PublishMsg(ctx, msg()); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b)
	})
	b.Run(fmt.Sprintf("sync/%d", 32*runtime.GOMAXPROCS(0)), func(b *testing.B) {
		msg := stream(b)
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := js.PublishMsg(ctx, msg()); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b)
	})
	b.Run("async-window/1", func(b *testing.B) {
		msg := stream(b)
		var inFlight []jetstream.PubAckFuture
		for b.Loop() {
			if len(inFlight) == benchWindow {
				<-inFlight[0].Ok()
				inFlight = inFlight[1:]
			}
			f, err := js.PublishMsgAsync(msg())
			if err != nil {
				b.Fatal(err)
			}
			inFlight = append(inFlight, f)
		}
		for _, f := range inFlight {
			<-f.Ok()
		}
		reportRate(b)
	})
}

const benchWindow = 1024

// BenchmarkAppend measures jetlog's Append from one and from many
// goroutines, and AppendAsync from one goroutine keeping a window in flight.
func BenchmarkAppend(b *testing.B) {
	s := startServer(b, b.TempDir(), 0)
	_, js := connect(b, s)
	var streams, ids atomic.Int64
	ctx := context.Background()

	for _, par := range []int{0, 4, 32} {
		goroutines := max(1, par*runtime.GOMAXPROCS(0))
		b.Run(fmt.Sprintf("Append/%d", goroutines), func(b *testing.B) {
			l := benchLog(b, js, &streams)
			if par == 0 {
				for b.Loop() {
					if _, err := l.Append(ctx, benchRecord(ids.Add(1))); err != nil {
						b.Fatal(err)
					}
				}
				reportRate(b)
				return
			}
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Append(ctx, benchRecord(ids.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportRate(b)
		})
	}
	b.Run("AppendAsync/1", func(b *testing.B) {
		l := benchLog(b, js, &streams)
		var inFlight []*jetlog.PendingAppend
		for b.Loop() {
			if len(inFlight) == benchWindow {
				if _, err := inFlight[0].Wait(ctx); err != nil {
					b.Fatal(err)
				}
				inFlight = inFlight[1:]
			}
			p, err := l.AppendAsync(benchRecord(ids.Add(1)))
			if err != nil {
				b.Fatal(err)
			}
			inFlight = append(inFlight, p)
		}
		for _, p := range inFlight {
			if _, err := p.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b)
	})
}

// BenchmarkMemberApply measures entries per second through a jetlog stream
// and a member: "live" with the member following appends as they arrive,
// "replay" with the member catching up on a log already written (a restart).
func BenchmarkMemberApply(b *testing.B) {
	s := startServer(b, b.TempDir(), 0)
	_, js := connect(b, s)
	var streams atomic.Int64
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	noReply := func(string, []byte) error { return nil }

	fill := func(b *testing.B, l *jetlog.Log, n int) uint64 {
		var last *jetlog.PendingAppend
		for i := range n {
			p, err := l.AppendAsync(benchRecord(int64(i)))
			if err != nil {
				b.Fatal(err)
			}
			last = p
		}
		seq, err := last.Wait(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return seq
	}
	run := func(b *testing.B, l *jetlog.Log) (*vpeer.Member, func()) {
		m := vpeer.NewMember(vpeer.MemberConfig{Log: l, Machine: vpeertest.NewKV(), Reply: noReply, Logger: quiet})
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		return m, func() {
			cancel()
			if err := <-done; err != nil {
				b.Error(err)
			}
		}
	}
	wait := func(b *testing.B, m *vpeer.Member, seq uint64) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := m.WaitApplied(ctx, seq); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("live", func(b *testing.B) {
		l := benchLog(b, js, &streams)
		m, stop := run(b, l)
		defer stop()
		<-m.Ready()
		b.ResetTimer()
		wait(b, m, fill(b, l, b.N))
		b.StopTimer()
		reportRate(b)
	})
	b.Run("replay", func(b *testing.B) {
		l := benchLog(b, js, &streams)
		last := fill(b, l, b.N)
		b.ResetTimer()
		m, stop := run(b, l)
		defer stop()
		wait(b, m, last)
		b.StopTimer()
		reportRate(b)
	})
}
