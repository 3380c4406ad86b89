package vpeertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer"
)

// TestSnapshotStore checks the behaviour every vpeer.SnapshotStore must
// show. newStore returns a new empty store each time it is called.
func TestSnapshotStore(t *testing.T, newStore func(t *testing.T) vpeer.SnapshotStore) {
	ctx := context.Background()
	t.Run("PutListOpenDelete", func(t *testing.T) {
		s := newStore(t)
		if got, err := s.List(ctx); err != nil || len(got) != 0 {
			t.Fatalf("List of an empty store = %v, %v", got, err)
		}
		at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
		stored := at.Add(time.Minute)
		big := bytes.Repeat([]byte("0123456789abcdef"), 100_000) // several object chunks
		for _, seq := range []uint64{200, 10, 3000} {
			data := fmt.Appendf(nil, "snapshot %d", seq)
			if seq == 3000 {
				data = big
			}
			info := vpeer.SnapshotInfo{Seq: seq, Time: at.Add(time.Duration(seq)), Hash: fmt.Sprintf("h%d", seq), Stored: stored}
			if err := s.Put(ctx, info, bytes.NewReader(data)); err != nil {
				t.Fatalf("put %d: %v", seq, err)
			}
		}
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for _, i := range list {
			seqs = append(seqs, i.Seq)
		}
		if !slices.Equal(seqs, []uint64{10, 200, 3000}) {
			t.Fatalf("List gives %v, want 10 200 3000, oldest first", seqs)
		}
		for _, i := range list {
			// A store may compress: the size is what it keeps.
			if !i.Time.Equal(at.Add(time.Duration(i.Seq))) || i.Hash != fmt.Sprintf("h%d", i.Seq) || i.Size <= 0 || !i.Stored.Equal(stored) {
				t.Fatalf("listed %+v; want time %v, hash h%d, a size, stored %v", i, at.Add(time.Duration(i.Seq)), i.Seq, stored)
			}
		}
		if got := read(t, s, 3000); !bytes.Equal(got, big) {
			t.Fatalf("snapshot 3000 reads back %d bytes, want %d", len(got), len(big))
		}
		if err := s.Put(ctx, vpeer.SnapshotInfo{Seq: 200, Hash: "again"}, strings.NewReader("replaced")); err != nil {
			t.Fatal(err)
		}
		if got := read(t, s, 200); string(got) != "replaced" {
			t.Fatalf("snapshot 200 after a second put = %q", got)
		}
		if err := s.Delete(ctx, 10); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, 11); err != nil {
			t.Fatalf("delete of a missing snapshot: %v", err)
		}
		if _, err := s.Open(ctx, 10); !errors.Is(err, vpeer.ErrNoSnapshot) {
			t.Fatalf("open of a deleted snapshot = %v, want ErrNoSnapshot", err)
		}
		if list, _ := s.List(ctx); len(list) != 2 || list[0].Seq != 200 || list[0].Hash != "again" {
			t.Fatalf("after delete and replace: %+v", list)
		}
	})
}

func read(t *testing.T, s vpeer.SnapshotStore, seq uint64) []byte {
	t.Helper()
	r, err := s.Open(context.Background(), seq)
	if err != nil {
		t.Fatalf("open %d: %v", seq, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %d: %v", seq, err)
	}
	return b
}

// Damage rewrites the stored data of snapshot seq with what f makes of it,
// as a failing disk or a half-finished copy would.
func Damage(t testing.TB, s vpeer.SnapshotStore, seq uint64, f func([]byte) []byte) {
	t.Helper()
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(i vpeer.SnapshotInfo) bool { return i.Seq == seq })
	if i < 0 {
		t.Fatalf("no snapshot %d to damage", seq)
	}
	r, err := s.Open(context.Background(), seq)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), list[i], bytes.NewReader(f(data))); err != nil {
		t.Fatal(err)
	}
}

// FlipBit flips one bit in the middle of b.
func FlipBit(b []byte) []byte {
	b[len(b)/2] ^= 0x10
	return b
}

// Truncate cuts b to two thirds.
func Truncate(b []byte) []byte { return b[:len(b)*2/3] }

// TestSnapshots checks snapshots with vpeer.Member over the logs and
// stores newLog and newStore return (new empty ones at each call): periodic
// and on-demand snapshot points, restoring and replaying, trimming, and
// refusing damaged snapshots.
func TestSnapshots(t *testing.T, newLog func(t *testing.T) vpeer.Log, newStore func(t *testing.T) vpeer.SnapshotStore) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	// fill appends n records, a tick every tenth, and waits for m to apply
	// them and, when s is not nil, to store a snapshot at every tenth:
	// otherwise one still being stored when the next is due makes the
	// member skip that one.
	fill := func(t *testing.T, l vpeer.Log, s vpeer.SnapshotStore, m *RunningMember, from, n int) uint64 {
		t.Helper()
		var last uint64
		for i := from; i < from+n; i++ {
			r := vpeer.Record{ReplyTo: fmt.Sprintf("r.%d", i), Payload: fmt.Appendf(nil, "add k%d %d", i%3, i)}
			if i%10 == 5 {
				at := t0.Add(time.Duration(i) * time.Second)
				r = vpeer.Record{ID: "tick-" + strconv.FormatInt(at.UnixNano(), 10), Tick: at}
			}
			last = Append(t, l, r)
			if s != nil && last%10 == 0 {
				WaitApplied(t, m, last)
				CheckFor(t, Timeout, 5*time.Millisecond, func() error {
					if st := m.Status().Stored; st == nil || st.Seq != last {
						return fmt.Errorf("snapshot %d not stored yet", last)
					}
					return nil
				})
			}
		}
		WaitApplied(t, m, last)
		return last
	}
	// waitStored waits until the store holds snapshots at seqs.
	waitStored := func(t *testing.T, s vpeer.SnapshotStore, seqs ...uint64) {
		t.Helper()
		CheckFor(t, Timeout, 5*time.Millisecond, func() error {
			list, err := s.List(context.Background())
			if err != nil {
				return err
			}
			var got []uint64
			for _, i := range list {
				got = append(got, i.Seq)
			}
			if !slices.Equal(got, seqs) {
				return fmt.Errorf("stored snapshots %v, want %v", got, seqs)
			}
			return nil
		})
	}
	// restart starts a new member over l and s and checks that it reaches
	// want's state, having restored from snapshot restored (0: none).
	restart := func(t *testing.T, l vpeer.Log, s vpeer.SnapshotStore, want *RunningMember, restored uint64) *RunningMember {
		t.Helper()
		m := StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: s, SnapshotEvery: 10})
		WaitReady(t, m)
		wantDigest, wantLast := want.State()
		if d, last := m.State(); d != wantDigest || last != wantLast {
			t.Fatalf("restarted member: digest %s at %d, want %s at %d", d, last, wantDigest, wantLast)
		}
		st := m.Status()
		switch {
		case restored == 0 && st.Restored != nil:
			t.Fatalf("restarted member restored snapshot %d, want a full replay", st.Restored.Seq)
		case restored != 0 && (st.Restored == nil || st.Restored.Seq != restored):
			t.Fatalf("restarted member restored %+v, want snapshot %d", st.Restored, restored)
		}
		// Entry.Time carries on from the snapshot: the last tick may be
		// trimmed away.
		seq := Append(t, l, vpeer.Record{ReplyTo: "time", Payload: []byte("time")})
		WaitApplied(t, m, seq)
		WaitApplied(t, want, seq)
		got, exp := m.Replies.All(), want.Replies.All()
		if len(got) != 1 || got[0] != exp[len(exp)-1] {
			t.Fatalf("restarted member answers %v to time, the first member %v", got, exp[len(exp)-1])
		}
		return m
	}

	t.Run("RestoreAndReplay", func(t *testing.T) {
		l, s := newLog(t), newStore(t)
		first := StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: s, SnapshotEvery: 10})
		WaitReady(t, first)
		fill(t, l, s, first, 0, 35)
		waitStored(t, s, 20, 30)
		st := first.Status()
		if st.Stored == nil || st.Stored.Seq != 30 || st.Stored.Hash != st.Checkpoints[2].Hash || !st.Stored.Time.Equal(t0.Add(25*time.Second)) {
			t.Fatalf("first member's status: %+v", st)
		}
		if cps := st.Checkpoints; len(cps) != 3 || cps[0].Seq != 10 || cps[2].Seq != 30 {
			t.Fatalf("checkpoints %+v, want at 10, 20, 30", cps)
		}
		if _, ok := l.(vpeer.Trimmer); ok {
			// Trimmed behind the oldest snapshot kept: record 21 is the first.
			if got := ReadN(t, l, 1, 1); got[0].Seq != 21 {
				t.Fatalf("first record after trimming is %d, want 21", got[0].Seq)
			}
		}
		second := restart(t, l, s, first, 30)
		if a, b := first.Status().Checkpoints, second.Status().Checkpoints; a[len(a)-1] != b[len(b)-1] {
			t.Fatalf("state hashes at the last snapshot point differ: %v vs %v", a, b)
		}
	})

	t.Run("DamagedSnapshotsRefused", func(t *testing.T) {
		for name, damage := range map[string]func([]byte) []byte{"BitFlip": FlipBit, "Truncated": Truncate} {
			t.Run(name, func(t *testing.T) {
				l, s := newLog(t), newStore(t)
				first := StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: s, SnapshotEvery: 10})
				WaitReady(t, first)
				fill(t, l, s, first, 0, 25)
				waitStored(t, s, 10, 20)
				Damage(t, s, 20, damage)
				restart(t, l, s, first, 10)
			})
		}
	})

	t.Run("FullReplayWhenNoSnapshotIsGood", func(t *testing.T) {
		l, s := newLog(t), newStore(t)
		// Keeping three, the log is not trimmed before a third snapshot.
		first := StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: s, SnapshotEvery: 10, KeepSnapshots: 3})
		WaitReady(t, first)
		fill(t, l, s, first, 0, 25)
		waitStored(t, s, 10, 20)
		Damage(t, s, 10, FlipBit)
		Damage(t, s, 20, Truncate)
		restart(t, l, s, first, 0)
	})

	t.Run("TrimmedLogWithoutGoodSnapshot", func(t *testing.T) {
		l, s := newLog(t), newStore(t)
		if _, ok := l.(vpeer.Trimmer); !ok {
			t.Skip("the log cannot be trimmed")
		}
		first := StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: s, SnapshotEvery: 10})
		WaitReady(t, first)
		fill(t, l, s, first, 0, 35)
		waitStored(t, s, 20, 30)
		Damage(t, s, 20, FlipBit)
		Damage(t, s, 30, FlipBit)
		m := vpeer.NewMember(vpeer.MemberConfig{Log: l, Machine: NewKV(), Snapshots: s, Logger: TestLogger(t)})
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := m.Run(ctx); err == nil || !strings.Contains(err.Error(), "trimmed") {
			t.Fatalf("Run over a trimmed log with no good snapshot = %v, want an error saying the log was trimmed", err)
		}
	})

	t.Run("OnDemandOnlyLeaderStores", func(t *testing.T) {
		l, s := newLog(t), newStore(t)
		leader := StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: s})
		follower := StartMember(t, vpeer.MemberConfig{Log: l, Snapshots: s, Lease: func() (uint64, bool) { return 0, false }})
		WaitReady(t, leader)
		WaitReady(t, follower)
		fill(t, l, nil, leader, 0, 7)
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		mark, err := vpeer.MarkSnapshot(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		last := fill(t, l, nil, leader, 7, 3)
		WaitApplied(t, follower, last)
		waitStored(t, s, mark)
		// The leader notes what it stored once the store has it.
		CheckFor(t, Timeout, 5*time.Millisecond, func() error {
			if leader.Status().Stored == nil {
				return errors.New("the leader has not noted the snapshot it stored")
			}
			return nil
		})
		a, b := leader.Status(), follower.Status()
		if len(a.Checkpoints) != 1 || !slices.Equal(a.Checkpoints, b.Checkpoints) || a.Checkpoints[0].Seq != mark {
			t.Fatalf("checkpoints: leader %v, follower %v; want both one at %d", a.Checkpoints, b.Checkpoints, mark)
		}
		if a.Stored == nil || b.Stored != nil || !a.Leading || b.Leading {
			t.Fatalf("stored: leader %+v, follower %+v; want the leader only", a.Stored, b.Stored)
		}
		// The mark is not applied: the state is that of the records around it.
		da, _ := leader.State()
		db, _ := follower.State()
		if da != db {
			t.Fatalf("members differ: %s vs %s", da, db)
		}
	})
}
