package vpeer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/vpeertest"
)

func newMemLog(*testing.T) vpeer.Log { return vpeer.NewMemLog() }

func TestMemLog(t *testing.T) { vpeertest.TestLog(t, newMemLog) }

func TestMemberOnMemLog(t *testing.T) { vpeertest.TestMember(t, newMemLog) }

func TestMemLogZeroValue(t *testing.T) {
	var l vpeer.MemLog
	vpeertest.Append(t, &l, vpeer.Record{ID: "a", Payload: []byte("x")})
	if _, err := l.Append(context.Background(), vpeer.Record{ID: "a"}); !errors.Is(err, vpeer.ErrDuplicate) {
		t.Fatalf("duplicate append = %v, want ErrDuplicate", err)
	}
	if got := vpeertest.ReadAll(t, &l); len(got) != 1 || string(got[0].Payload) != "x" {
		t.Fatalf("zero-value MemLog holds %+v", got)
	}
}

func TestMemLogCopiesPayload(t *testing.T) {
	l := vpeer.NewMemLog()
	p := []byte("abc")
	vpeertest.Append(t, l, vpeer.Record{Payload: p})
	p[0] = 'X'
	got := vpeertest.ReadAll(t, l)
	got[0].Payload[1] = 'Y'
	if again := vpeertest.ReadAll(t, l); string(again[0].Payload) != "abc" {
		t.Fatalf("stored payload changed to %q through the caller's slices", again[0].Payload)
	}
}

// undecodable marks some records of a log as undecodable on read, as jetlog
// does for a record with a malformed header.
type undecodable struct {
	vpeer.Log
	bad map[uint64]bool
}

func (l undecodable) Read(ctx context.Context, from uint64, fn func(vpeer.Record) error) error {
	return l.Log.Read(ctx, from, func(r vpeer.Record) error {
		if l.bad[r.Seq] {
			r.Err = fmt.Errorf("record %d: bad header", r.Seq)
		}
		return fn(r)
	})
}

func TestMemberSkipsUndecodableRecords(t *testing.T) {
	mem := vpeer.NewMemLog()
	var last uint64
	for i := range 6 {
		last = vpeertest.Append(t, mem, vpeer.Record{ReplyTo: fmt.Sprintf("r.%d", i), Payload: []byte("add x 1")})
	}
	// The newest record when the members start is one of the bad ones: they
	// must still become ready.
	l := undecodable{Log: mem, bad: map[uint64]bool{2: true, last: true}}
	a := vpeertest.StartMember(t, vpeer.MemberConfig{Log: l})
	b := vpeertest.StartMember(t, vpeer.MemberConfig{Log: l})
	vpeertest.WaitReady(t, a)
	vpeertest.WaitReady(t, b)
	seq := vpeertest.Append(t, l, vpeer.Record{ReplyTo: "new", Payload: []byte("add x 1")})
	vpeertest.WaitApplied(t, a, seq)
	vpeertest.WaitApplied(t, b, seq)
	for _, m := range []*vpeertest.RunningMember{a, b} {
		var x int64
		m.Query(func() { x = m.KV.Get("x") })
		if x != 5 {
			t.Fatalf("x = %d, want 5: two of seven records skipped", x)
		}
		if got := m.Replies.All(); len(got) != 1 || got[0] != (vpeertest.Reply{Subject: "new", Data: "5"}) {
			t.Fatalf("replies = %v, want one to new", got)
		}
	}
	da, _ := a.State()
	db, _ := b.State()
	if da != db {
		t.Fatalf("members differ after skipping the same records: %s vs %s", da, db)
	}
	for _, m := range []*vpeertest.RunningMember{a, b} {
		if got := m.Status().Skipped; !slices.Equal(got, []uint64{2, last}) {
			t.Fatalf("member reports %v skipped, want 2 and %d", got, last)
		}
	}
}

type brokenLog struct{ vpeer.Log }

var errBroken = errors.New("stream gone")

func (brokenLog) Read(context.Context, uint64, func(vpeer.Record) error) error { return errBroken }

func TestMemberRunErrors(t *testing.T) {
	ctx := context.Background()
	m := vpeer.NewMember(vpeer.MemberConfig{Log: brokenLog{vpeer.NewMemLog()}, Machine: vpeertest.NewKV(), Logger: vpeertest.TestLogger(t)})
	if err := m.Run(ctx); !errors.Is(err, errBroken) {
		t.Fatalf("Run over a broken log = %v, want its read error", err)
	}
	if err := m.Run(ctx); err == nil {
		t.Fatal("second Run of one member succeeded")
	}
	if err := vpeer.NewMember(vpeer.MemberConfig{Machine: vpeertest.NewKV()}).Run(ctx); err == nil {
		t.Fatal("Run without a log succeeded")
	}
}

func TestMemberStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := vpeer.NewMember(vpeer.MemberConfig{Log: vpeer.NewMemLog(), Machine: vpeertest.NewKV(), TickInterval: 1})
	if err := m.Run(ctx); err != nil {
		t.Fatalf("Run with a done context = %v, want nil", err)
	}
}

// BenchmarkMemberApplyMemLog measures the member alone: entries per second
// from an in-memory log through a member into a KV, replies included.
func BenchmarkMemberApplyMemLog(b *testing.B) {
	l := vpeer.NewMemLog()
	m := vpeer.NewMember(vpeer.MemberConfig{
		Log:     l,
		Machine: vpeertest.NewKV(),
		Reply:   func(string, []byte) error { return nil },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	<-m.Ready()
	var last uint64
	for i := range b.N {
		last = vpeertest.Append(b, l, vpeer.Record{ID: strconv.Itoa(i), ReplyTo: "r", Payload: []byte("add k 1")})
	}
	if err := m.WaitApplied(ctx, last); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func newMemSnapshots(*testing.T) vpeer.SnapshotStore { return &vpeer.MemSnapshots{} }

func TestMemSnapshots(t *testing.T) { vpeertest.TestSnapshotStore(t, newMemSnapshots) }

func TestSnapshotsOnMemLog(t *testing.T) { vpeertest.TestSnapshots(t, newMemLog, newMemSnapshots) }

func TestGroupInMemory(t *testing.T) {
	vpeertest.TestGroup(t, func(*testing.T) vpeertest.Env {
		return vpeertest.Env{Log: vpeer.NewMemLog(), Snapshots: &vpeer.MemSnapshots{}, Registry: &vpeer.MemRegistry{}}
	})
}

func TestMemRegistry(t *testing.T) { vpeertest.TestRegistry(t, &vpeer.MemRegistry{}) }

func TestSummarize(t *testing.T) {
	cp := func(seq uint64, h string) vpeer.Checkpoint { return vpeer.Checkpoint{Seq: seq, Hash: h} }
	reports := []vpeer.ProcessStatus{
		{Group: "g", Process: "a", Size: 3, Capacity: 2, LogLast: 50, Lease: "a/1", Members: []vpeer.MemberStatus{
			{ID: "a/1", Slot: 2, Checkpoints: []vpeer.Checkpoint{cp(10, "x"), cp(20, "y"), cp(30, "z")}},
			{ID: "a/2", Slot: 0, Checkpoints: []vpeer.Checkpoint{cp(20, "y"), cp(30, "z")}},
		}, Snapshots: []vpeer.SnapshotInfo{{Seq: 30}}},
		{Group: "g", Process: "b", Size: 3, Capacity: 1, LogLast: 49, Members: []vpeer.MemberStatus{
			{ID: "b/1", Slot: 1, Checkpoints: []vpeer.Checkpoint{cp(10, "x"), cp(20, "y")}},
		}},
		{Group: "g", Process: "spare", Size: 3, Capacity: 1},
		{Group: "h", Process: "c", Size: 1, Capacity: 1, Members: []vpeer.MemberStatus{
			{ID: "c/1", Checkpoints: []vpeer.Checkpoint{cp(5, "p")}},
			{ID: "c/2", Checkpoints: []vpeer.Checkpoint{cp(5, "q")}},
		}},
	}
	gs := vpeer.Summarize(reports)
	if len(gs) != 2 || gs[0].Group != "g" || gs[1].Group != "h" {
		t.Fatalf("groups %+v", gs)
	}
	g := gs[0]
	if g.Size != 3 || g.LogLast != 50 || g.Lease != "a/1" || len(g.Snapshots) != 1 || len(g.Spares) != 1 || g.Spares[0] != "spare (1 free)" {
		t.Fatalf("group g: %+v", g)
	}
	if ids := []string{g.Members[0].ID, g.Members[1].ID, g.Members[2].ID}; ids[0] != "a/2" || ids[1] != "b/1" || ids[2] != "a/1" {
		t.Fatalf("members not by slot: %v", ids)
	}
	if g.Common != 20 || !g.Agree || len(g.Hashes) != 3 {
		t.Fatalf("common point %d, agree %v, hashes %v; want 20, true, three", g.Common, g.Agree, g.Hashes)
	}
	if h := gs[1]; h.Common != 5 || h.Agree {
		t.Fatalf("group h: common %d agree %v; want 5, disagreeing", h.Common, h.Agree)
	}
}

// failingStore fails its first Puts, as a store timing out under load.
type failingStore struct {
	vpeer.MemSnapshots
	fail atomic.Int32
}

func (s *failingStore) Put(ctx context.Context, info vpeer.SnapshotInfo, data io.Reader) error {
	if s.fail.Add(-1) >= 0 {
		return errors.New("timeout waiting for ack")
	}
	return s.MemSnapshots.Put(ctx, info, data)
}

func TestMemberRetriesFailedSnapshot(t *testing.T) {
	l := vpeer.NewMemLog()
	s := &failingStore{}
	s.fail.Store(1)
	m := vpeertest.StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: s})
	vpeertest.WaitReady(t, m)
	vpeertest.Append(t, l, vpeer.Record{Payload: []byte("add x 1")})
	mark, err := vpeer.MarkSnapshot(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	vpeertest.WaitStored(t, s, mark)
}

// heldLog is a log whose readers see no record past a limit until it is
// lifted: a member of this process falling behind the log.
type heldLog struct {
	*vpeer.MemLog
	limit atomic.Uint64 // 0: no limit
	moved chan struct{} // closed when the limit is lifted
}

func (l *heldLog) Read(ctx context.Context, from uint64, fn func(vpeer.Record) error) error {
	return l.MemLog.Read(ctx, from, func(r vpeer.Record) error {
		if lim := l.limit.Load(); lim != 0 && r.Seq > lim {
			select {
			case <-l.moved:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return fn(r)
	})
}

func TestQueryLatestSeesWhatTheLogHolds(t *testing.T) {
	log := &heldLog{MemLog: vpeer.NewMemLog(), moved: make(chan struct{})}
	env := vpeertest.Env{Log: log, Snapshots: &vpeer.MemSnapshots{}, Registry: &vpeer.MemRegistry{}}
	g := vpeertest.StartGroup(t, env, vpeer.GroupConfig{Name: "g", Size: 1, TickInterval: time.Hour})
	vpeertest.WaitGroupReady(t, 1, g)
	ctx, cancel := context.WithTimeout(context.Background(), vpeertest.Timeout)
	defer cancel()
	get := func(query func(context.Context, func(*vpeer.Member)) error) (int64, error) {
		var v int64
		err := query(ctx, func(m *vpeer.Member) { v = m.Machine().(*vpeertest.KV).Get("x") })
		return v, err
	}

	// Applied by another process's member, say, and acknowledged: this
	// process's member has not read it yet.
	log.limit.Store(vpeertest.Append(t, log, vpeer.Record{Payload: []byte("set x 1")}))
	vpeertest.Append(t, log, vpeer.Record{Payload: []byte("set x 2")})
	vpeertest.CheckFor(t, vpeertest.Timeout, 5*time.Millisecond, func() error {
		if v, err := get(g.Query); err != nil || v != 1 {
			return fmt.Errorf("x = %d (%v), want 1 applied", v, err)
		}
		return nil
	})
	if v, err := get(g.Query); err != nil || v != 1 {
		t.Fatalf("Query: x = %d (%v); want 1, the member being held back", v, err)
	}

	latest := make(chan int64, 1)
	go func() {
		v, err := get(g.QueryLatest)
		if err != nil {
			t.Error(err)
		}
		latest <- v
	}()
	select {
	case v := <-latest:
		t.Fatalf("QueryLatest answered x = %d before the member applied the log's last record", v)
	case <-time.After(100 * time.Millisecond):
	}
	close(log.moved)
	if v := <-latest; v != 2 {
		t.Fatalf("QueryLatest: x = %d, want 2", v)
	}

	// With nothing to wait for, it answers at once, and it gives up with
	// ctx.
	if v, err := get(g.QueryLatest); err != nil || v != 2 {
		t.Fatalf("QueryLatest: x = %d (%v), want 2", v, err)
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := g.QueryLatest(done, func(*vpeer.Member) { t.Error("ran with ctx done") }); err == nil {
		t.Fatal("QueryLatest with ctx done: no error")
	}
}

// hangingStore is a snapshot store whose first hang listings and reads
// wait for ctx to end, as a watch whose answer a loaded cluster lost.
type hangingStore struct {
	*vpeer.MemSnapshots
	lists, opens atomic.Int32
	hang         int32
}

func (s *hangingStore) List(ctx context.Context) ([]vpeer.SnapshotInfo, error) {
	if s.lists.Add(1) <= s.hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.MemSnapshots.List(ctx)
}

func (s *hangingStore) Open(ctx context.Context, seq uint64) (io.ReadCloser, error) {
	if s.opens.Add(1) <= s.hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.MemSnapshots.Open(ctx, seq)
}

// A member starting on a store that does not answer lists it again, and
// gives a snapshot it cannot read up for an older one, rather than never
// becoming ready.
func TestMemberStartsThroughAStoreThatHangs(t *testing.T) {
	l := vpeer.NewMemLog()
	store := &vpeer.MemSnapshots{}
	first := vpeertest.StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: store})
	vpeertest.WaitReady(t, first)
	var marks []uint64
	for i := range 2 {
		vpeertest.Append(t, l, vpeer.Record{Payload: fmt.Appendf(nil, "add x %d", i+1)})
		mark, err := vpeer.MarkSnapshot(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		vpeertest.WaitStored(t, store, mark)
		marks = append(marks, mark)
	}

	hanging := &hangingStore{MemSnapshots: store, hang: 1}
	m := vpeertest.StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: hanging, StartTimeout: 50 * time.Millisecond, Lease: func() (uint64, bool) { return 0, false }})
	vpeertest.WaitReady(t, m)
	st := m.Status()
	if hanging.lists.Load() != 2 || st.Restored == nil || st.Restored.Seq != marks[0] {
		t.Fatalf("after a listing and a read that hung: %d listings, restored %+v; want 2 listings and the older snapshot, at %d",
			hanging.lists.Load(), st.Restored, marks[0])
	}
	var x int64
	m.Query(func() { x = m.KV.Get("x") })
	if x != 3 {
		t.Fatalf("x = %d, want 3", x)
	}
}

// sizedKV is a KV that tells the size of its snapshot (vpeer.Sizer).
type sizedKV struct{ *vpeertest.KV }

func (kv sizedKV) SnapshotSize() int { return snapshotSize(kv.KV) }

func snapshotSize(m vpeer.StateMachine) int {
	var b bytes.Buffer
	if err := m.Snapshot(&b); err != nil {
		panic(err)
	}
	return b.Len()
}

// TestSnapshotSpacing: with SnapshotSpacing, periodic snapshot points move
// apart as the state grows, judged on the size of the last snapshot or, for
// a Sizer, of the state now; and a member that starts from a stored
// snapshot takes the same points as one that applied the whole log.
func TestSnapshotSpacing(t *testing.T) {
	for _, sized := range []bool{false, true} {
		t.Run(fmt.Sprintf("sizer=%v", sized), func(t *testing.T) { testSnapshotSpacing(t, sized) })
	}
}

func testSnapshotSpacing(t *testing.T, sized bool) {
	const records, spacing = 120, 16
	l := vpeer.NewMemLog()
	store := &vpeer.MemSnapshots{}
	cfg := vpeer.MemberConfig{Log: l, Snapshots: store, SnapshotEvery: 1, SnapshotSpacing: spacing, KeepSnapshots: 100}
	start := func() *vpeertest.RunningMember {
		c := cfg
		if sized {
			c.Machine = sizedKV{vpeertest.NewKV()}
			return vpeertest.StartMachine(t, c)
		}
		return vpeertest.StartMember(t, c)
	}
	a := start()
	vpeertest.WaitReady(t, a)

	// The points as the rule gives them, from a machine of the test's own:
	// each new key makes the state larger.
	kv := vpeertest.NewKV()
	var want []uint64
	var lastPoint uint64
	lastSize := 0
	var last uint64
	for i := range records {
		cmd := []byte("add k" + strconv.Itoa(i) + " 1")
		last = vpeertest.Append(t, l, vpeer.Record{Payload: cmd})
		kv.Apply(vpeer.Entry{Seq: last, Payload: cmd})
		size := lastSize
		if sized {
			size = snapshotSize(kv)
		}
		if last-lastPoint >= uint64(size)/spacing {
			want = append(want, last)
			lastPoint, lastSize = last, snapshotSize(kv)
		}
	}
	vpeertest.WaitApplied(t, a, last)
	if len(want) > records/4 || want[len(want)-1]-want[len(want)-2] <= want[1]-want[0] {
		t.Fatalf("points %v: not spaced out as the state grew", want)
	}
	seqs := func(m *vpeertest.RunningMember) []uint64 {
		var s []uint64
		for _, c := range m.Status().Checkpoints {
			s = append(s, c.Seq)
		}
		return s
	}
	if got, w := seqs(a), want[max(len(want)-8, 0):]; !slices.Equal(got, w) {
		t.Fatalf("member took points %v, want the last of %v", got, w)
	}

	// A member restoring the newest snapshot stored, then applying more,
	// takes the points the first one takes.
	vpeertest.WaitStored(t, store, want[len(want)-1])
	b := start()
	vpeertest.WaitReady(t, b)
	for i := records; i < 4*records; i++ {
		last = vpeertest.Append(t, l, vpeer.Record{Payload: []byte("add k" + strconv.Itoa(i) + " 1")})
	}
	vpeertest.WaitApplied(t, a, last)
	vpeertest.WaitApplied(t, b, last)
	ga, gb := seqs(a), seqs(b)
	if len(gb) < 3 || !slices.Equal(ga[len(ga)-len(gb)+1:], gb[1:]) {
		t.Fatalf("restored member took points %v, the first %v", gb, ga)
	}
}
