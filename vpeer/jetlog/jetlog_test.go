package jetlog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/jetlog"
	"github.com/momonga-project/momonga/vpeer/vpeertest"
)

func TestConformance(t *testing.T) { vpeertest.TestLog(t, logFactory(t)) }

func TestMember(t *testing.T) { vpeertest.TestMember(t, logFactory(t)) }

func TestOpen(t *testing.T) {
	s := startServer(t, t.TempDir(), 0)
	_, js := connect(t, s)
	ctx := context.Background()
	for _, cfg := range []jetlog.Config{{}, {Stream: "S", Subject: "s.*"}, {Stream: "S", Subject: "s.>"}} {
		if _, err := jetlog.Open(ctx, js, cfg); err == nil {
			t.Errorf("Open(%+v) succeeded, want an error", cfg)
		}
	}
	l := open(t, js, jetlog.Config{Stream: "SCHED_a"})
	vpeertest.Append(t, l, vpeer.Record{Payload: []byte("kept")})
	// Opening again updates the stream and keeps its records.
	open(t, js, jetlog.Config{Stream: "SCHED_a", DuplicateWindow: 10 * time.Second, Storage: jetstream.FileStorage})
	st, err := js.Stream(ctx, "SCHED_a")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.Duplicates != 10*time.Second || !slices.Equal(c.Subjects, []string{"vpeer.SCHED_a"}) || c.Replicas != 1 || info.State.Msgs != 1 {
		t.Fatalf("stream after reopening: %+v with %d records", c, info.State.Msgs)
	}
}

func TestAppendAsync(t *testing.T) {
	s := startServer(t, t.TempDir(), 0)
	_, js := connect(t, s)
	l := open(t, js, jetlog.Config{Stream: "ASYNC"})
	ctx := context.Background()
	var pending []*jetlog.PendingAppend
	for i := range 500 {
		p, err := l.AppendAsync(vpeer.Record{ID: fmt.Sprintf("a%d", i), Payload: fmt.Appendf(nil, "%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, p)
	}
	for i, p := range pending {
		if seq, err := p.Wait(ctx); err != nil || seq != uint64(i+1) {
			t.Fatalf("append %d = %d, %v; want %d", i, seq, err, i+1)
		}
	}
	p, err := l.AppendAsync(vpeer.Record{ID: "a7", Payload: []byte("again")})
	if err != nil {
		t.Fatal(err)
	}
	if seq, err := p.Wait(ctx); !errors.Is(err, vpeer.ErrDuplicate) || seq != 8 {
		t.Fatalf("async duplicate = %d, %v; want 8, ErrDuplicate", seq, err)
	}
}

// TestAppendToCapturedSubject deletes a log's stream and lets another
// stream take its subject: appending then fails instead of feeding the
// other stream unnoticed.
func TestAppendToCapturedSubject(t *testing.T) {
	s := startServer(t, t.TempDir(), 0)
	_, js := connect(t, s)
	ctx := context.Background()
	l := open(t, js, jetlog.Config{Stream: "GONE"})
	if err := js.DeleteStream(ctx, "GONE"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"vpeer.GONE"}}); err != nil {
		t.Fatal(err)
	}
	if seq, err := l.Append(ctx, vpeer.Record{Payload: []byte("x")}); err == nil || !strings.Contains(err.Error(), "OTHER") {
		t.Fatalf("append to a captured subject = %d, %v", seq, err)
	}
}

// TestMalformedRecord publishes a record whose tick header does not parse,
// as a buggy or hostile writer could, and checks that members skip it alike.
func TestMalformedRecord(t *testing.T) {
	s := startServer(t, t.TempDir(), 0)
	_, js := connect(t, s)
	l := open(t, js, jetlog.Config{Stream: "BAD"})
	vpeertest.Append(t, l, vpeer.Record{Payload: []byte("add x 1")})
	msg := &nats.Msg{Subject: "vpeer.BAD", Header: nats.Header{jetlog.HeaderTick: {"yesterday"}}, Data: []byte("add x 100")}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	recs := vpeertest.ReadAll(t, l)
	if len(recs) != 2 || recs[0].Err != nil || recs[1].Seq != 2 || recs[1].Err == nil {
		t.Fatalf("records = %+v; want the second with Err set", recs)
	}

	a := vpeertest.StartMember(t, vpeer.MemberConfig{Log: l})
	b := vpeertest.StartMember(t, vpeer.MemberConfig{Log: l})
	vpeertest.WaitReady(t, a)
	vpeertest.WaitReady(t, b)
	seq := vpeertest.Append(t, l, vpeer.Record{ReplyTo: "r", Payload: []byte("add x 1")})
	for _, m := range []*vpeertest.RunningMember{a, b} {
		vpeertest.WaitApplied(t, m, seq)
		if got := m.Replies.All(); len(got) != 1 || got[0].Data != "2" {
			t.Fatalf("replies = %v, want one with 2: the malformed record skipped", got)
		}
	}
	da, _ := a.State()
	db, _ := b.State()
	if da != db {
		t.Fatalf("members differ: %s vs %s", da, db)
	}
}

// TestReplayAfterServerRestart stops a member and its server, starts a new
// server on the same store and a new member, which must rebuild the same
// state without re-sending replies.
func TestReplayAfterServerRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := jetlog.Config{Stream: "SCHED_r"}
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

	s1 := startServer(t, dir, 0)
	nc1, js1 := connect(t, s1)
	l1 := open(t, js1, cfg)
	m1 := vpeertest.StartMember(t, vpeer.MemberConfig{Log: l1, TickInterval: 10 * time.Millisecond, Now: vpeertest.NewClock(t0).Now})
	vpeertest.WaitReady(t, m1)
	var last uint64
	for i := range 40 {
		last = vpeertest.Append(t, l1, vpeer.Record{ID: fmt.Sprintf("req-%d", i), ReplyTo: fmt.Sprintf("r.%d", i), Payload: fmt.Appendf(nil, "add k%d %d", i%4, i)})
	}
	vpeertest.WaitApplied(t, m1, last)
	if err := m1.Stop(); err != nil {
		t.Fatal(err)
	}
	want, applied := m1.State()
	var ticks int
	m1.Query(func() { ticks = m1.KV.Ticks() })
	if ticks != 1 || len(m1.Replies.All()) != 40 {
		t.Fatalf("first member: %d ticks, %d replies; want 1 and 40", ticks, len(m1.Replies.All()))
	}
	nc1.Close()
	stopServer(s1)

	s2 := startServer(t, dir, 0)
	_, js2 := connect(t, s2)
	l2 := open(t, js2, cfg)
	m2 := vpeertest.StartMember(t, vpeer.MemberConfig{Log: l2})
	vpeertest.WaitReady(t, m2)
	if got, at := m2.State(); got != want || at != applied {
		t.Fatalf("after restart: digest %s at %d, want %s at %d", got, at, want, applied)
	}
	if got := m2.Replies.All(); len(got) != 0 {
		t.Fatalf("restarted member re-sent %d old replies", len(got))
	}
	// The stream still knows the IDs appended before the restart.
	if seq, err := l2.Append(context.Background(), vpeer.Record{ID: "req-3", Payload: []byte("add k0 1000")}); !errors.Is(err, vpeer.ErrDuplicate) {
		t.Fatalf("re-append after restart = %d, %v; want ErrDuplicate", seq, err)
	}
	seq := vpeertest.Append(t, l2, vpeer.Record{ReplyTo: "new", Payload: []byte("time")})
	vpeertest.WaitApplied(t, m2, seq)
	if got, want := m2.Replies.All(), []vpeertest.Reply{{Subject: "new", Data: strconv.FormatInt(t0.UnixNano(), 10)}}; !slices.Equal(got, want) {
		t.Fatalf("replies = %v, want %v", got, want)
	}
}

// TestReadSurvivesServerRestart keeps a Read going while its server stops
// and starts again on the same port and store.
func TestReadSurvivesServerRestart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, -1)
	port := s.Addr().(*net.TCPAddr).Port
	_, js := connect(t, s)
	l := open(t, js, jetlog.Config{Stream: "SCHED_rs"})

	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan vpeer.Record, 100)
	done := make(chan error, 1)
	go func() {
		done <- l.Read(ctx, 1, func(r vpeer.Record) error {
			got <- r
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Read = %v, want context.Canceled", err)
		}
	})

	// Appends carry IDs, so retrying one that may have landed before the
	// server went away cannot double it; that is what the gateway does.
	appendRetrying := func(i int) {
		vpeertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := l.Append(ctx, vpeer.Record{ID: fmt.Sprintf("req-%d", i), Payload: fmt.Appendf(nil, "%d", i)})
			if errors.Is(err, vpeer.ErrDuplicate) {
				return nil
			}
			return err
		})
	}
	expect := func(from, to int) {
		for i := from; i < to; i++ {
			select {
			case r := <-got:
				if r.Seq != uint64(i+1) || string(r.Payload) != strconv.Itoa(i) {
					t.Fatalf("read %d %q, want %d %q", r.Seq, r.Payload, i+1, strconv.Itoa(i))
				}
			case err := <-done:
				t.Fatalf("Read returned: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatalf("record %d not read", i+1)
			}
		}
	}

	for i := range 5 {
		appendRetrying(i)
	}
	expect(0, 5)
	stopServer(s)
	startServer(t, dir, port)
	for i := 5; i < 10; i++ {
		appendRetrying(i)
	}
	expect(5, 10)
}

// TestRequestReply runs the gateway's path end to end: a request on a NATS
// subject is appended with its reply inbox, and the member's reply reaches
// the requester.
func TestRequestReply(t *testing.T) {
	s := startServer(t, t.TempDir(), 0)
	nc, js := connect(t, s)
	l := open(t, js, jetlog.Config{Stream: "SCHED_rr"})
	m := vpeer.NewMember(vpeer.MemberConfig{
		Log:     l,
		Machine: vpeertest.NewKV(),
		Reply:   nc.Publish,
		Logger:  vpeertest.TestLogger(t),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	// Records appended before the member read the log's end count as old and
	// get no reply, so requests wait for it to be ready.
	select {
	case <-m.Ready():
	case <-time.After(vpeertest.Timeout):
		t.Fatal("member not ready")
	}
	sub, err := nc.Subscribe("svc.kv", func(msg *nats.Msg) {
		r := vpeer.Record{ID: msg.Header.Get("Req-Id"), ReplyTo: msg.Reply, Payload: msg.Data}
		if _, err := l.Append(context.Background(), r); err != nil && !errors.Is(err, vpeer.ErrDuplicate) {
			t.Errorf("gateway append: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	for i := 1; i <= 3; i++ {
		req := &nats.Msg{Subject: "svc.kv", Header: nats.Header{"Req-Id": {fmt.Sprintf("h1-%d", i)}}, Data: []byte("add x 10")}
		resp, err := nc.RequestMsg(req, vpeertest.Timeout)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got, want := string(resp.Data), strconv.Itoa(10*i); got != want {
			t.Fatalf("reply %d = %q, want %q", i, got, want)
		}
	}
}

// snapshotFactory returns a function giving a new snapshot store on one
// in-process server at each call.
func snapshotFactory(t *testing.T) func(*testing.T) vpeer.SnapshotStore {
	s := startServer(t, t.TempDir(), 0)
	_, js := connect(t, s)
	var n atomic.Int64
	return func(t *testing.T) vpeer.SnapshotStore {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := jetlog.OpenSnapshots(ctx, js, fmt.Sprintf("SNAP%d", n.Add(1)), 1)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
}

func TestSnapshotStore(t *testing.T) { vpeertest.TestSnapshotStore(t, snapshotFactory(t)) }

func TestSnapshots(t *testing.T) { vpeertest.TestSnapshots(t, logFactory(t), snapshotFactory(t)) }

func TestGroup(t *testing.T) {
	s := startServer(t, t.TempDir(), 0)
	_, js := connect(t, s)
	var n atomic.Int64
	vpeertest.TestGroup(t, func(t *testing.T) vpeertest.Env {
		i := n.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		snaps, err := jetlog.OpenSnapshots(ctx, js, fmt.Sprintf("GSNAP%d", i), 1)
		if err != nil {
			t.Fatal(err)
		}
		reg, err := jetlog.OpenRegistry(ctx, js, fmt.Sprintf("GREG%d", i), 1)
		if err != nil {
			t.Fatal(err)
		}
		return vpeertest.Env{Log: open(t, js, jetlog.Config{Stream: fmt.Sprintf("G%d", i)}), Snapshots: snaps, Registry: reg}
	})
}

func TestRegistry(t *testing.T) {
	s := startServer(t, t.TempDir(), 0)
	_, js := connect(t, s)
	reg, err := jetlog.OpenRegistry(context.Background(), js, "MEMBERS", 1)
	if err != nil {
		t.Fatal(err)
	}
	vpeertest.TestRegistry(t, reg)
}

// TestDamagedObjectRefused damages the compressed bytes of the newest
// snapshot object, as a bad disk under the object store would (the object's
// digest is rewritten to match, so only the checks inside can tell), and
// truncates it in another run: a new member must fall back to the older one.
func TestDamagedObjectRefused(t *testing.T) {
	s := startServer(t, t.TempDir(), 0)
	_, js := connect(t, s)
	ctx := context.Background()
	for i, damage := range []func([]byte) []byte{vpeertest.FlipBit, vpeertest.Truncate} {
		l := open(t, js, jetlog.Config{Stream: fmt.Sprintf("DMG%d", i)})
		bucket := fmt.Sprintf("DMGSNAP%d", i)
		snaps, err := jetlog.OpenSnapshots(ctx, js, bucket, 1)
		if err != nil {
			t.Fatal(err)
		}
		first := vpeertest.StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: snaps, KeepSnapshots: 3})
		vpeertest.WaitReady(t, first)
		var marks []uint64
		for range 2 {
			for j := range 20 {
				vpeertest.Append(t, l, vpeer.Record{Payload: fmt.Appendf(nil, "add k%d %d", j%3, j)})
			}
			mark, err := vpeer.MarkSnapshot(ctx, l)
			if err != nil {
				t.Fatal(err)
			}
			vpeertest.WaitStored(t, snaps, mark)
			marks = append(marks, mark)
		}
		os, err := js.ObjectStore(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%020d", marks[1])
		raw, err := os.GetBytes(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.GetInfo(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Put(ctx, info.ObjectMeta, bytes.NewReader(damage(raw))); err != nil {
			t.Fatal(err)
		}
		second := vpeertest.StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: snaps})
		vpeertest.WaitReady(t, second)
		if st := second.Status(); st.Restored == nil || st.Restored.Seq != marks[0] {
			t.Fatalf("member restored %+v; want the older snapshot %d", st.Restored, marks[0])
		}
		a, _ := first.State()
		b, _ := second.State()
		if a != b {
			t.Fatalf("restored member's state %s differs from %s", b, a)
		}
	}
}
