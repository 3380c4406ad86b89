package vpeer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/vpeertest"
)

var errCut = errors.New("cut off")

// cutRegistry and cutLog are one process's view of the registry and the
// log, which a partition can take away.
type cutRegistry struct {
	vpeer.Registry
	cut *atomic.Bool
}

func (r cutRegistry) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if r.cut.Load() {
		return nil, 0, errCut
	}
	return r.Registry.Get(ctx, key)
}

func (r cutRegistry) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	if r.cut.Load() {
		return 0, errCut
	}
	return r.Registry.Create(ctx, key, value)
}

func (r cutRegistry) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if r.cut.Load() {
		return 0, errCut
	}
	return r.Registry.Update(ctx, key, value, rev)
}

type cutLog struct {
	vpeer.Log
	cut *atomic.Bool
}

func (l cutLog) Append(ctx context.Context, r vpeer.Record) (uint64, error) {
	if l.cut.Load() {
		return 0, errCut
	}
	return l.Log.Append(ctx, r)
}

// termRecords counts the records of term in the log.
func termRecords(t *testing.T, l vpeer.Log, term uint64) int {
	n := 0
	for _, r := range vpeertest.ReadAll(t, l) {
		if r.Term == term {
			n++
		}
	}
	return n
}

// cutOffHolder cuts the lease holder's process off from the registry and
// the log until another process has taken the lease, then gives it the log
// back before the registry (a registry slower to answer again, as a
// replicated one is after a partition heals): a holder that kept acting on
// its lease would then append in its old term after its successor's
// records. It returns the audit of the log (LateAppends) and how long the
// old holder's acts went on after its successor's first (negative: how
// long before it they stopped).
func cutOffHolder(t *testing.T) (late []vpeer.LateAppend, overlap time.Duration) {
	log, reg := vpeer.NewMemLog(), &vpeer.MemRegistry{}
	var regCut, logCut atomic.Bool
	cfg := vpeer.GroupConfig{Name: "g", Size: 2, Capacity: 1, TickInterval: 10 * time.Millisecond}
	a := vpeertest.StartGroup(t, vpeertest.Env{Log: cutLog{log, &logCut}, Registry: cutRegistry{reg, &regCut}}, cfg)
	vpeertest.CheckFor(t, vpeertest.Timeout, 5*time.Millisecond, func() error {
		if !a.Leading() {
			return errors.New("the first process does not hold the lease")
		}
		return nil
	})
	b := vpeertest.StartGroup(t, vpeertest.Env{Log: log, Registry: reg}, cfg)
	vpeertest.WaitGroupReady(t, 2, a, b)
	old, _ := a.Term()

	regCut.Store(true)
	logCut.Store(true)
	var term uint64
	vpeertest.CheckFor(t, vpeertest.Timeout, 5*time.Millisecond, func() error {
		var ok bool
		if term, ok = b.Term(); !ok || termRecords(t, log, term) < 3 {
			return errors.New("the other process has not taken the lease and ticked")
		}
		return nil
	})
	if term <= old {
		t.Fatalf("the successor's term %d is not above its predecessor's %d", term, old)
	}
	logCut.Store(false)
	// Ten of the successor's ticks with the log back: ten chances for the
	// old holder to append too.
	before := termRecords(t, log, term)
	vpeertest.CheckFor(t, vpeertest.Timeout, 5*time.Millisecond, func() error {
		if n := termRecords(t, log, term); n < before+10 {
			return fmt.Errorf("%d ticks of the successor since the log healed", n-before)
		}
		return nil
	})
	regCut.Store(false)
	vpeertest.CheckFor(t, vpeertest.Timeout, 5*time.Millisecond, func() error {
		if a.Leading() || !b.Leading() {
			return fmt.Errorf("leading: old holder %v, successor %v", a.Leading(), b.Leading())
		}
		return nil
	})
	// What each process says it tried, whether or not the log took it.
	overlap = actsIn(t, a, old).Last.Sub(actsIn(t, b, term).First)
	late = vpeer.LateAppends(vpeertest.ReadAll(t, log))
	t.Logf("terms %d then %d; %d records of the old term after the new one's first; the old holder's last act %v after its successor's first",
		old, term, len(late), overlap)
	return late, overlap
}

// TestCutOffHolderStopsActing: a lease holder cut off for longer than the
// lapse stops acting before its successor begins, and none of its records
// follows one of its successor's.
func TestCutOffHolderStopsActing(t *testing.T) {
	late, overlap := cutOffHolder(t)
	for _, l := range late {
		t.Errorf("record %d (%q) appended in term %d after record %d of term %d", l.Record.Seq, l.Record.ID, l.Record.Term, l.First, l.Newer)
	}
	if overlap >= 0 {
		t.Errorf("the old holder acted until %v after its successor's first act", overlap)
	}
}

// TestPlantedLeaseBugIsCaught runs the same cut with the bug planted (a
// holder that keeps acting on a lease it no longer renews): the audits
// must see it, or TestCutOffHolderStopsActing would prove nothing.
func TestPlantedLeaseBugIsCaught(t *testing.T) {
	vpeer.PlantLeaseBug(t)
	late, overlap := cutOffHolder(t)
	if len(late) == 0 || overlap <= 0 {
		t.Fatalf("the planted bug went unnoticed: %d late records, the old holder's acts ended %v after its successor's first", len(late), overlap)
	}
}

// actsIn is what g reports of its acts in term.
func actsIn(t *testing.T, g *vpeertest.RunningGroup, term uint64) vpeer.LeaseTerm {
	t.Helper()
	for _, lt := range g.Status(context.Background()).Terms {
		if lt.Term == term {
			return lt
		}
	}
	t.Fatalf("process %s reports no act in term %d", g.Process(), term)
	return vpeer.LeaseTerm{}
}

// TestOnLeaseStampsAndRefuses: the duties' appends carry the lease's term,
// and are refused where the lease is not held.
func TestOnLeaseStampsAndRefuses(t *testing.T) {
	log, reg := vpeer.NewMemLog(), &vpeer.MemRegistry{}
	cfg := vpeer.GroupConfig{Name: "g", Size: 2, Capacity: 1}
	a := vpeertest.StartGroup(t, vpeertest.Env{Log: log, Registry: reg}, cfg)
	vpeertest.CheckFor(t, vpeertest.Timeout, 5*time.Millisecond, func() error {
		if !a.Leading() {
			return errors.New("the first process does not hold the lease")
		}
		return nil
	})
	b := vpeertest.StartGroup(t, vpeertest.Env{Log: log, Registry: reg}, cfg)
	vpeertest.WaitGroupReady(t, 2, a, b)
	term, _ := a.Term()
	seq := vpeertest.Append(t, a.OnLease(log), vpeer.Record{Payload: []byte("add x 1")})
	if _, err := b.OnLease(log).Append(context.Background(), vpeer.Record{Payload: []byte("add x 2")}); !errors.Is(err, vpeer.ErrNotLeading) {
		t.Fatalf("append through a process without the lease = %v, want ErrNotLeading", err)
	}
	recs := vpeertest.ReadAll(t, log)
	for _, r := range recs {
		if r.Seq == seq && r.Term != term {
			t.Fatalf("the holder's record has term %d, want %d", r.Term, term)
		}
		if string(r.Payload) == "add x 2" {
			t.Fatal("the refused record is in the log")
		}
	}
}

func TestLateAppends(t *testing.T) {
	recs := []vpeer.Record{
		{Seq: 1, Term: 5}, {Seq: 2}, {Seq: 3, Term: 5}, {Seq: 4, Term: 9}, {Seq: 5}, {Seq: 6, Term: 5},
		{Seq: 7, Term: 9}, {Seq: 8, Term: 12}, {Seq: 9, Term: 9},
	}
	late := vpeer.LateAppends(recs)
	if len(late) != 2 || late[0].Record.Seq != 6 || late[0].Newer != 9 || late[0].First != 4 ||
		late[1].Record.Seq != 9 || late[1].Newer != 12 || late[1].First != 8 {
		t.Fatalf("LateAppends = %+v, want records 6 (after term 9 from 4) and 9 (after term 12 from 8)", late)
	}
	if late := vpeer.LateAppends(recs[:5]); len(late) != 0 {
		t.Fatalf("LateAppends of terms in order = %+v, want none", late)
	}
}

// TestMembersFenceOffPastTerms: a record appended in a lease term older
// than one already applied (a past holder's, held up in a broken link) is
// not applied, by a member that applied the newer term's records or by one
// restored from a snapshot taken after them.
func TestMembersFenceOffPastTerms(t *testing.T) {
	l, store := vpeer.NewMemLog(), &vpeer.MemSnapshots{}
	first := vpeertest.StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: store})
	vpeertest.WaitReady(t, first)
	vpeertest.Append(t, l, vpeer.Record{Term: 5, Payload: []byte("add x 1")})
	vpeertest.Append(t, l, vpeer.Record{Payload: []byte("add x 2")}) // a request: no term
	vpeertest.Append(t, l, vpeer.Record{Term: 9, Payload: []byte("add x 10")})
	late := vpeertest.Append(t, l, vpeer.Record{Term: 5, Payload: []byte("add x 100")})
	mark, err := vpeer.MarkSnapshot(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	vpeertest.WaitStored(t, store, mark)
	later := vpeertest.Append(t, l, vpeer.Record{Term: 8, Payload: []byte("add x 1000")})
	last := vpeertest.Append(t, l, vpeer.Record{Term: 9, Payload: []byte("add x 20000")})

	restored := vpeertest.StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: store})
	for _, m := range []*vpeertest.RunningMember{first, restored} {
		vpeertest.WaitApplied(t, m, last)
		var x int64
		m.Query(func() { x = m.KV.Get("x") })
		if x != 20013 {
			t.Errorf("x = %d, want 20013: the records of terms 5 and 8 after term 9 fenced off", x)
		}
	}
	if st := restored.Status(); st.Restored == nil || st.Restored.Term != 9 {
		t.Fatalf("the second member restored %+v, want the snapshot at %d with term 9", st.Restored, mark)
	}
	if got := first.Status().Fenced; !slices.Equal(got, []uint64{late, later}) {
		t.Errorf("the first member fenced %v, want %v", got, []uint64{late, later})
	}
	if got := restored.Status().Fenced; !slices.Equal(got, []uint64{later}) {
		t.Errorf("the restored member fenced %v, want %v", got, []uint64{later})
	}
	d1, _ := first.State()
	d2, _ := restored.State()
	if d1 != d2 {
		t.Errorf("the members' states differ: %s and %s", d1, d2)
	}
}
