package vpeertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer"
)

// Reply is a reply a member sent.
type Reply struct {
	Subject string
	Data    string
}

// Replies records the replies members send; its Send is a
// vpeer.MemberConfig.Reply.
type Replies struct {
	mu   sync.Mutex
	list []Reply
	fail map[string]bool
}

// FailFor makes Send return an error for subject.
func (r *Replies) FailFor(subject string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail == nil {
		r.fail = make(map[string]bool)
	}
	r.fail[subject] = true
}

// Send records a reply, or fails for a subject given to FailFor.
func (r *Replies) Send(subject string, data []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail[subject] {
		return fmt.Errorf("no route to %s", subject)
	}
	r.list = append(r.list, Reply{subject, string(data)})
	return nil
}

// All returns the replies sent so far, in order.
func (r *Replies) All() []Reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

// Clock is a settable clock for vpeer.MemberConfig.Now.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a clock that reads t.
func NewClock(t time.Time) *Clock {
	c := &Clock{}
	c.Set(t)
	return c
}

// Set makes the clock read t.
func (c *Clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// Now reads the clock.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// RunningMember is a Member running in its own goroutine.
type RunningMember struct {
	*vpeer.Member
	KV      *KV      // StartMember's machine
	Replies *Replies // StartMember's replies
	stop    func() error
}

// Stop cancels the member's Run and waits for it to return. It may be called
// more than once.
func (rm *RunningMember) Stop() error { return rm.stop() }

// State returns the KV's digest and applied sequence, read consistently.
func (rm *RunningMember) State() (digest string, last uint64) {
	rm.Query(func() { digest, last = rm.KV.Digest(), rm.KV.Last() })
	return digest, last
}

// StartMember runs a member with a new KV and a Replies recorder over cfg
// (whose Machine and Reply it sets) until the test ends or Stop is called.
func StartMember(t testing.TB, cfg vpeer.MemberConfig) *RunningMember {
	t.Helper()
	kv, replies := NewKV(), &Replies{}
	cfg.Machine = kv
	cfg.Reply = replies.Send
	rm := StartMachine(t, cfg)
	rm.KV, rm.Replies = kv, replies
	return rm
}

// StartMachine runs a member over cfg, with the machine and replies it
// names, until the test ends or Stop is called.
func StartMachine(t testing.TB, cfg vpeer.MemberConfig) *RunningMember {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = TestLogger(t)
	}
	rm := &RunningMember{Member: vpeer.NewMember(cfg)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rm.Run(ctx) }()
	rm.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(Timeout):
			return errors.New("member did not stop")
		}
	})
	t.Cleanup(func() {
		if err := rm.Stop(); err != nil {
			t.Errorf("member Run: %v", err)
		}
	})
	return rm
}

// WaitReady waits for rm.Ready.
func WaitReady(t testing.TB, rm *RunningMember) {
	t.Helper()
	select {
	case <-rm.Ready():
	case <-time.After(Timeout):
		t.Fatalf("member not ready after %v (applied %d)", Timeout, rm.Applied())
	}
}

// WaitApplied waits until rm has applied seq.
func WaitApplied(t testing.TB, rm *RunningMember, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := rm.WaitApplied(ctx, seq); err != nil {
		t.Fatal(err)
	}
}

// TestLogger logs to the test's output.
func TestLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// countingLog counts the appends a Log refused as duplicates.
type countingLog struct {
	vpeer.Log
	dups atomic.Int64
}

func (l *countingLog) Append(ctx context.Context, r vpeer.Record) (uint64, error) {
	seq, err := l.Log.Append(ctx, r)
	if errors.Is(err, vpeer.ErrDuplicate) {
		l.dups.Add(1)
	}
	return seq, err
}

// TestMember checks vpeer.Member over the logs newLog returns (a new empty
// log each call): replies, replay, ticks, queries.
func TestMember(t *testing.T, newLog func(t *testing.T) vpeer.Log) {
	t.Run("ApplyAndReply", func(t *testing.T) {
		l := newLog(t)
		m := StartMember(t, vpeer.MemberConfig{Log: l})
		WaitReady(t, m)
		Append(t, l, vpeer.Record{ReplyTo: "r.1", Payload: []byte("add x 5")})
		Append(t, l, vpeer.Record{Payload: []byte("add x 2")}) // no ReplyTo: no reply
		Append(t, l, vpeer.Record{ReplyTo: "r.3", Payload: []byte("nop")})
		Append(t, l, vpeer.Record{ReplyTo: "r.4", Payload: []byte("time")})
		last := Append(t, l, vpeer.Record{ReplyTo: "r.5", Payload: []byte("get x")})
		WaitApplied(t, m, last)
		want := []Reply{{"r.1", "5"}, {"r.4", "zero"}, {"r.5", "7"}}
		if got := m.Replies.All(); !slices.Equal(got, want) {
			t.Fatalf("replies = %v, want %v", got, want)
		}
		if m.Applied() != last {
			t.Fatalf("Applied = %d, want %d", m.Applied(), last)
		}
	})

	t.Run("OutputsHandedOnInOrder", func(t *testing.T) {
		l := newLog(t)
		// Records before the member starts are replayed: their outputs
		// are handed on too.
		Append(t, l, vpeer.Record{Payload: []byte("set a 1")})
		Append(t, l, vpeer.Record{Payload: []byte("add a 1")})
		var (
			mu  sync.Mutex
			got []string
		)
		m := StartMember(t, vpeer.MemberConfig{Log: l, Outputs: func(seq uint64, outs []any) {
			mu.Lock()
			defer mu.Unlock()
			for _, o := range outs {
				got = append(got, fmt.Sprintf("%d:%v", seq, o))
			}
		}})
		WaitReady(t, m)
		Append(t, l, vpeer.Record{Payload: []byte("set b 2")})
		Append(t, l, vpeer.Record{Payload: []byte("get b")})
		last := Append(t, l, vpeer.Record{Payload: []byte("set a 3")})
		WaitApplied(t, m, last)
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"1:{a 1}", "3:{b 2}", "5:{a 3}"}; !slices.Equal(got, want) {
			t.Fatalf("outputs %v, want %v", got, want)
		}
	})

	t.Run("BatchAppliedInOrder", func(t *testing.T) {
		l := newLog(t)
		var (
			mu   sync.Mutex
			outs []string
		)
		m := StartMember(t, vpeer.MemberConfig{Log: l, Outputs: func(seq uint64, o []any) {
			mu.Lock()
			defer mu.Unlock()
			outs = append(outs, fmt.Sprintf("%d:%v", seq, o))
		}})
		WaitReady(t, m)
		Append(t, l, vpeer.Record{ReplyTo: "r.0", Payload: []byte("add x 1")})
		seq := Append(t, l, vpeer.Record{Batch: []vpeer.Request{
			{ReplyTo: "r.1", Payload: []byte("add x 2")},
			{Payload: []byte("set y 5")}, // no reply subject: no reply
			{ReplyTo: "r.3", Payload: []byte("set x 10")},
			{ReplyTo: "r.4", Payload: []byte("get x")},
		}})
		last := Append(t, l, vpeer.Record{ReplyTo: "r.5", Payload: []byte("add x 1")})
		WaitApplied(t, m, last)
		want := []Reply{{"r.0", "1"}, {"r.1", "3"}, {"r.3", "ok"}, {"r.4", "10"}, {"r.5", "11"}}
		if got := m.Replies.All(); !slices.Equal(got, want) {
			t.Fatalf("replies = %v, want %v", got, want)
		}
		mu.Lock()
		defer mu.Unlock()
		// The outputs of a batch's requests, handed on once, for the record.
		if want := []string{fmt.Sprintf("%d:[{y 5} {x 10}]", seq)}; !slices.Equal(outs, want) {
			t.Fatalf("outputs %v, want %v", outs, want)
		}
	})

	t.Run("RepliesOnlyForNewRecords", func(t *testing.T) {
		l := newLog(t)
		var old uint64
		for i := range 10 {
			old = Append(t, l, vpeer.Record{ReplyTo: fmt.Sprintf("old.%d", i), Payload: []byte("add x 1")})
		}
		m := StartMember(t, vpeer.MemberConfig{Log: l})
		WaitReady(t, m)
		if a := m.Applied(); a < old {
			t.Fatalf("ready with %d applied, want at least %d", a, old)
		}
		seq := Append(t, l, vpeer.Record{ReplyTo: "new.1", Payload: []byte("add x 1")})
		WaitApplied(t, m, seq)
		if got, want := m.Replies.All(), []Reply{{"new.1", "11"}}; !slices.Equal(got, want) {
			t.Fatalf("replies = %v, want %v", got, want)
		}
	})

	t.Run("ReplyErrorDoesNotStop", func(t *testing.T) {
		l := newLog(t)
		m := StartMember(t, vpeer.MemberConfig{Log: l})
		m.Replies.FailFor("broken")
		WaitReady(t, m)
		Append(t, l, vpeer.Record{ReplyTo: "broken", Payload: []byte("add x 1")})
		seq := Append(t, l, vpeer.Record{ReplyTo: "fine", Payload: []byte("add x 1")})
		WaitApplied(t, m, seq)
		if got, want := m.Replies.All(), []Reply{{"fine", "2"}}; !slices.Equal(got, want) {
			t.Fatalf("replies = %v, want %v", got, want)
		}
	})

	t.Run("ReplayAfterRestart", func(t *testing.T) {
		l := newLog(t)
		t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		first := StartMember(t, vpeer.MemberConfig{Log: l})
		WaitReady(t, first)
		var last uint64
		for i := range 30 {
			r := vpeer.Record{ReplyTo: fmt.Sprintf("r.%d", i), Payload: fmt.Appendf(nil, "add k%d %d", i%3, i)}
			if i%10 == 0 {
				at := t0.Add(time.Duration(i) * time.Second)
				r = vpeer.Record{ID: "tick-" + strconv.FormatInt(at.UnixNano(), 10), Tick: at}
			}
			last = Append(t, l, r)
		}
		WaitApplied(t, first, last)
		if err := first.Stop(); err != nil {
			t.Fatalf("first member: %v", err)
		}
		wantDigest, _ := first.State()
		if n := len(first.Replies.All()); n != 27 {
			t.Fatalf("first member sent %d replies, want 27", n)
		}

		second := StartMember(t, vpeer.MemberConfig{Log: l})
		WaitReady(t, second)
		digest, applied := second.State()
		if digest != wantDigest || applied != last {
			t.Fatalf("replayed member: digest %s at %d, want %s at %d", digest, applied, wantDigest, last)
		}
		for k := range 3 {
			key := fmt.Sprintf("k%d", k)
			var a, b int64
			first.Query(func() { a = first.KV.Get(key) })
			second.Query(func() { b = second.KV.Get(key) })
			if a != b {
				t.Fatalf("%s = %d after replay, %d before", key, b, a)
			}
		}
		if got := second.Replies.All(); len(got) != 0 {
			t.Fatalf("replayed member re-sent old replies: %v", got)
		}
		// Entry.Time is rebuilt from the log's ticks on replay.
		seq := Append(t, l, vpeer.Record{ReplyTo: "after", Payload: []byte("time")})
		WaitApplied(t, second, seq)
		want := []Reply{{"after", strconv.FormatInt(t0.Add(20*time.Second).UnixNano(), 10)}}
		if got := second.Replies.All(); !slices.Equal(got, want) {
			t.Fatalf("replies after replay = %v, want %v", got, want)
		}
	})

	t.Run("TicksAdvanceTime", func(t *testing.T) {
		l := newLog(t)
		interval := 10 * time.Millisecond
		t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		clock := NewClock(t0.Add(3 * time.Millisecond)) // within t0's interval
		m := StartMember(t, vpeer.MemberConfig{Log: l, TickInterval: interval, Now: clock.Now})
		WaitReady(t, m)
		for i, at := range []time.Time{t0, t0.Add(time.Second), t0.Add(time.Hour)} {
			if i > 0 {
				clock.Set(at.Add(7 * time.Millisecond))
			}
			CheckFor(t, Timeout, 5*time.Millisecond, func() error {
				var now time.Time
				m.Query(func() { now = m.KV.Time() })
				if !now.Equal(at) {
					return fmt.Errorf("member time %v, want %v", now, at)
				}
				return nil
			})
			subject := fmt.Sprintf("time.%d", i)
			seq := Append(t, l, vpeer.Record{ReplyTo: subject, Payload: []byte("time")})
			WaitApplied(t, m, seq)
			want := Reply{subject, strconv.FormatInt(at.UnixNano(), 10)}
			if got := m.Replies.All(); len(got) != i+1 || got[i] != want {
				t.Fatalf("replies = %v, want the last one %v", got, want)
			}
		}
		var ticks []vpeer.Record
		for _, r := range ReadAll(t, l) {
			if !r.Tick.IsZero() {
				ticks = append(ticks, r)
			}
		}
		if len(ticks) != 3 {
			t.Fatalf("log holds %d ticks, want 3: %+v", len(ticks), ticks)
		}
		for i, at := range []time.Time{t0, t0.Add(time.Second), t0.Add(time.Hour)} {
			if id := "tick-" + strconv.FormatInt(at.UnixNano(), 10); ticks[i].ID != id || !ticks[i].Tick.Equal(at) {
				t.Fatalf("tick %d = %s at %v, want %s at %v", i, ticks[i].ID, ticks[i].Tick, id, at)
			}
		}
	})

	t.Run("TicksDeduplicated", func(t *testing.T) {
		l := &countingLog{Log: newLog(t)}
		interval := 5 * time.Millisecond
		t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		clock := NewClock(t0)
		cfg := vpeer.MemberConfig{Log: l, TickInterval: interval, Now: clock.Now}
		a, b := StartMember(t, cfg), StartMember(t, cfg)
		times := []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Second)}
		for i, at := range times {
			clock.Set(at)
			// Both members try each tick: one appends it, the other's is a
			// duplicate.
			CheckFor(t, Timeout, 5*time.Millisecond, func() error {
				if n := l.dups.Load(); n != int64(i+1) {
					return fmt.Errorf("%d duplicate ticks, want %d", n, i+1)
				}
				return nil
			})
		}
		var ticks []time.Time
		for _, r := range ReadAll(t, l) {
			if !r.Tick.IsZero() {
				ticks = append(ticks, r.Tick)
			}
		}
		if !slices.EqualFunc(ticks, times, time.Time.Equal) {
			t.Fatalf("ticks in the log = %v, want %v", ticks, times)
		}
		last, err := l.LastSeq(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		WaitApplied(t, a, last)
		WaitApplied(t, b, last)
		da, _ := a.State()
		db, _ := b.State()
		if da != db {
			t.Fatalf("members differ after the same ticks: %s vs %s", da, db)
		}
	})

	t.Run("QueryConsistent", func(t *testing.T) {
		l := newLog(t)
		m := StartMember(t, vpeer.MemberConfig{Log: l})
		const total = 1000
		Append(t, l, vpeer.Record{Payload: fmt.Appendf(nil, "set a %d", total)})
		var last atomic.Uint64
		writer := make(chan error, 1)
		go func() {
			for range 200 {
				seq, err := l.Append(context.Background(), vpeer.Record{Payload: []byte("move a b 1")})
				if err != nil {
					writer <- err
					return
				}
				last.Store(seq)
			}
			writer <- nil
		}()
		queries := 0
		for done := false; !done; {
			select {
			case err := <-writer:
				if err != nil {
					t.Fatalf("append: %v", err)
				}
				done = true
			default:
			}
			var a, b int64
			var seq uint64
			m.Query(func() { a, b, seq = m.KV.Get("a"), m.KV.Get("b"), m.KV.Last() })
			if seq > 0 && a+b != total {
				t.Fatalf("query at record %d saw a=%d b=%d, a move half applied", seq, a, b)
			}
			queries++
		}
		WaitApplied(t, m, last.Load())
		var a, b int64
		m.Query(func() { a, b = m.KV.Get("a"), m.KV.Get("b") })
		if a != total-200 || b != 200 {
			t.Fatalf("after %d queries: a=%d b=%d, want %d and 200", queries, a, b, total-200)
		}
	})

	t.Run("WaitApplied", func(t *testing.T) {
		l := newLog(t)
		m := StartMember(t, vpeer.MemberConfig{Log: l})
		seq := Append(t, l, vpeer.Record{Payload: []byte("add x 1")})
		WaitApplied(t, m, seq)

		ctx, cancel := context.WithCancel(context.Background())
		waited := make(chan error, 1)
		go func() { waited <- m.WaitApplied(ctx, seq+100) }()
		cancel()
		select {
		case err := <-waited:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("WaitApplied after cancel = %v, want context.Canceled", err)
			}
		case <-time.After(Timeout):
			t.Fatal("WaitApplied did not return after cancel")
		}

		go func() { waited <- m.WaitApplied(context.Background(), seq+2) }()
		Append(t, l, vpeer.Record{Payload: []byte("add x 1")})
		Append(t, l, vpeer.Record{Payload: []byte("add x 1")})
		select {
		case err := <-waited:
			if err != nil || m.Applied() < seq+2 {
				t.Fatalf("WaitApplied = %v with %d applied, want nil with %d", err, m.Applied(), seq+2)
			}
		case <-time.After(Timeout):
			t.Fatal("WaitApplied did not return after the record was applied")
		}
	})
}
