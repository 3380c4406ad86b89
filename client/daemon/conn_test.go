package daemon

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/internal/natstest"
	wu "github.com/momonga-project/momonga/workunits"
)

// answeringProject answers subject with answer on a NATS server of its own, and
// returns host h1's connection to it, and the server.
func answeringProject(t *testing.T, subject string, answer nats.MsgHandler) (*conn, *natsserver.Server) {
	t.Helper()
	ns, project := natstest.Start(t)
	if _, err := project.Subscribe(subject, answer); err != nil {
		t.Fatal(err)
	}
	if err := project.Flush(); err != nil {
		t.Fatal(err)
	}
	c, err := dial(ns.ClientURL(), "h1", "test", slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c, ns
}

// TestRequestNotRecordedIsSentAgain: a request the project could not
// record (CodeUnavailable, as while its cluster elects a leader) is sent
// again, with the same sequence number, until it is answered; a refusal
// for good is not.
func TestRequestNotRecordedIsSentAgain(t *testing.T) {
	var mu sync.Mutex
	var seqs []uint64
	c, _ := answeringProject(t, "vol.*.result", func(m *nats.Msg) {
		r, _ := wu.Decode[wu.Report](m.Data)
		mu.Lock()
		seqs = append(seqs, r.Seq)
		n := len(seqs)
		mu.Unlock()
		switch {
		case r.Task == "refused":
			_ = m.Respond(wu.Encode(wu.Ack{V: 1, Error: wu.Errorf(wu.CodeNotAssigned, "not yours")}))
		case n < 3:
			_ = m.Respond(wu.Encode(wu.Ack{V: 1, Error: wu.Errorf(wu.CodeUnavailable, "not recorded")}))
		default:
			_ = m.Respond(wu.Encode(wu.Ack{V: 1}))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	report := func(task string) error {
		return c.numbered(ctx, wu.OpResult, func(seq uint64) any { return wu.Report{V: 1, Seq: seq, Task: task} }, &wu.Ack{}, -1)
	}
	if err := report("t1"); err != nil {
		t.Fatalf("report answered unavailable twice, then accepted: %v", err)
	}
	mu.Lock()
	got := append([]uint64(nil), seqs...)
	mu.Unlock()
	if len(got) != 3 || got[0] != got[1] || got[1] != got[2] {
		t.Fatalf("sequence numbers sent: %v; want the same one three times", got)
	}
	if err := report("refused"); wu.ErrorCode(err) != wu.CodeNotAssigned {
		t.Fatalf("report refused for good: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seqs) != 4 {
		t.Fatalf("%d requests sent; a refusal for good must not be sent again", len(seqs))
	}
}

// TestReconnectDelaySpreadsHosts: the waits grow with the attempts up to
// half a minute, and are spread over the upper half of each step, so that
// the hosts of a restarted server do not come back in step.
func TestReconnectDelaySpreadsHosts(t *testing.T) {
	for _, c := range []struct {
		attempts int
		lo, hi   time.Duration
	}{{0, 125 * time.Millisecond, 250 * time.Millisecond}, {3, time.Second, 2 * time.Second}, {20, 15 * time.Second, 30 * time.Second}} {
		lo, hi := reconnectDelay(c.attempts, func() float64 { return 0 }), reconnectDelay(c.attempts, func() float64 { return 0.999999 })
		if lo != c.lo || hi > c.hi || hi < c.hi-time.Millisecond {
			t.Errorf("attempt %d: waits from %v to %v, want from %v to %v", c.attempts, lo, hi, c.lo, c.hi)
		}
	}
}

// TestPacedReconnectSpreadsAsTheProjectSays: with a spread from the hello
// reply, a reconnection waits a draw within it when that is longer than
// the backoff's step; with none, the backoff alone.
func TestPacedReconnectSpreadsAsTheProjectSays(t *testing.T) {
	const spread = 25 * time.Second
	for _, c := range []struct {
		attempts int
		spread   time.Duration
		rnd      float64
		want     time.Duration
	}{
		{1, 0, 0.5, reconnectDelay(1, func() float64 { return 0.5 })},
		{1, spread, 0.5, spread / 2},
		{1, spread, 0, reconnectDelay(1, func() float64 { return 0 })},
		{20, spread, 0.5, reconnectDelay(20, func() float64 { return 0.5 })}, // 22.5 s > 12.5 s
		{20, 2 * time.Minute, 0.5, time.Minute},
	} {
		if got := pacedDelay(c.attempts, c.spread, func() float64 { return c.rnd }); got != c.want {
			t.Errorf("attempt %d, spread %v, draw %v: wait %v, want %v", c.attempts, c.spread, c.rnd, got, c.want)
		}
	}
	var p Pacing
	p.Set(wu.HelloReply{ReconnectSpreadSeconds: 25})
	if got := time.Duration(p.spread.Load()); got != spread {
		t.Errorf("pacing set from a hello reply of 25 s: %v", got)
	}
}

// TestHelloNamesItsServer: a hello names the NATS server the host is
// connected to, as the project paces each server's hosts by their number.
func TestHelloNamesItsServer(t *testing.T) {
	names := make(chan string, 1)
	c, ns := answeringProject(t, "vol.*.hello", func(m *nats.Msg) {
		h, _ := wu.Decode[wu.Hello](m.Data)
		names <- h.Server
		_ = m.Respond(wu.Encode(wu.HelloReply{V: 1, NextSeq: 1}))
	})
	if _, err := c.hello(t.Context(), wu.HostInfo{Name: "h1", CPUs: 1}); err != nil {
		t.Fatal(err)
	}
	if got := <-names; got == "" || got != ns.Name() {
		t.Errorf("hello named server %q, want %q", got, ns.Name())
	}
}
