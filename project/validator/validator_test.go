package validator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// fixture is the project as the validator sees it: the comparisons the
// scheduler waits for, a blob store, the log and a clock, all in memory.
type fixture struct {
	mu       sync.Mutex
	pending  []sched.Comparison
	blobs    map[wu.Hash][]byte
	missing  map[wu.Hash]error // blobs that cannot be read, and why
	appended []vpeer.Record
	appendFn func(vpeer.Record) error // nil: accept
	now      time.Time
	log      bytes.Buffer

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs the validator until the test ends. Its Wake channel is
// unbuffered: once pass() returns, the validator has finished the pass it
// started and is waiting for the next.
func start(t *testing.T) *fixture {
	f := &fixture{blobs: map[wu.Hash][]byte{}, missing: map[wu.Hash]error{}, now: time.Unix(1_000_000, 0),
		wake: make(chan struct{}), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() {
		defer close(f.done)
		Run(ctx, Config{
			Pending: func(limit int) []sched.Comparison {
				f.mu.Lock()
				defer f.mu.Unlock()
				return append([]sched.Comparison(nil), f.pending[:min(limit, len(f.pending))]...)
			},
			Blob: func(_ context.Context, h wu.Hash) ([]byte, error) {
				f.mu.Lock()
				defer f.mu.Unlock()
				if err := f.missing[h]; err != nil {
					return nil, err
				}
				b, ok := f.blobs[h]
				if !ok {
					return nil, fmt.Errorf("no blob %s", h.Short())
				}
				return b, nil
			},
			Append: func(_ context.Context, r vpeer.Record) (uint64, error) {
				f.mu.Lock()
				defer f.mu.Unlock()
				if f.appendFn != nil {
					if err := f.appendFn(r); err != nil {
						return 0, err
					}
				}
				f.appended = append(f.appended, r)
				return uint64(len(f.appended)), nil
			},
			Interval: time.Hour,
			Wake:     f.wake,
			Now: func() time.Time {
				f.mu.Lock()
				defer f.mu.Unlock()
				return f.now
			},
			Logger: slog.New(slog.NewTextHandler(&lockedWriter{mu: &f.mu, w: &f.log}, nil)),
		})
	}()
	t.Cleanup(func() { cancel(); <-f.done })
	return f
}

// lockedWriter lets the test read the log while the validator writes it.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// pass makes the validator run one pass, and waits until it has.
func (f *fixture) pass() {
	f.wake <- struct{}{} // the previous pass, if any, is over
	f.wake <- struct{}{} // and so is this one
}

func (f *fixture) output(b string) wu.Hash {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := wu.HashOf([]byte(b))
	f.blobs[h] = []byte(b)
	return h
}

func (f *fixture) setPending(p ...sched.Comparison) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = p
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// verdicts decodes every record appended so far.
func (f *fixture) verdicts(t *testing.T) []wu.Compare {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wu.Compare
	for _, r := range f.appended {
		var cmd wu.Command
		if err := json.Unmarshal(r.Payload, &cmd); err != nil || cmd.Op != wu.OpCompare || cmd.V != wu.WireVersion {
			t.Fatalf("record %s: %+v, %v: want a %s command", r.ID, cmd, err, wu.OpCompare)
		}
		var c wu.Compare
		if err := json.Unmarshal(cmd.Body, &c); err != nil {
			t.Fatal(err)
		}
		if want := "compare." + c.Unit + "." + string(c.A) + "." + string(c.B); r.ID != want {
			t.Errorf("record id %q, want %q: a verdict is de-duplicated by its pair", r.ID, want)
		}
		out = append(out, c)
	}
	return out
}

func (f *fixture) logged() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.log.String()
}

func TestComparesWithTheAppsTolerance(t *testing.T) {
	f := start(t)
	exact := f.output("1 2.5 x\n")
	near := f.output("1 2.5000000001 x\n")
	far := f.output("1 2.6 x\n")
	other := f.output("1 2.5 y\n")
	rel := wu.Tolerance{Rel: 1e-9}
	f.setPending(
		sched.Comparison{Unit: "within", A: exact, B: near, Tolerance: rel},
		sched.Comparison{Unit: "beyond", A: exact, B: far, Tolerance: rel},
		sched.Comparison{Unit: "abs", A: exact, B: far, Tolerance: wu.Tolerance{Abs: 0.2}},
		sched.Comparison{Unit: "text", A: exact, B: other, Tolerance: wu.Tolerance{Abs: 1}},
		sched.Comparison{Unit: "none", A: exact, B: near},
	)
	f.pass()
	want := map[string]bool{"within": true, "beyond": false, "abs": true, "text": false, "none": false}
	got := f.verdicts(t)
	if len(got) != len(want) {
		t.Fatalf("%d verdicts, want %d: %+v", len(got), len(want), got)
	}
	for _, v := range got {
		if v.V != wu.WireVersion || v.Agree != want[v.Unit] {
			t.Errorf("unit %s: agree %v, want %v", v.Unit, v.Agree, want[v.Unit])
		}
	}
	if got[0].A != exact || got[0].B != near {
		t.Errorf("verdict names the pair %s %s, want %s %s", got[0].A.Short(), got[0].B.Short(), exact.Short(), near.Short())
	}
}

// TestUnreadableOutputsDisagree: an output missing from the blob store, or
// too large to compare (the blob store refuses to hand it over, or it is
// over wu.MaxCompareBytes), counts as disagreement, and the validator says
// so in its log.
func TestUnreadableOutputsDisagree(t *testing.T) {
	f := start(t)
	a := f.output("3.14159")
	gone := wu.HashOf([]byte("never stored"))
	tooBig := wu.HashOf([]byte("a large output"))
	f.mu.Lock()
	f.missing[tooBig] = fmt.Errorf("output %s is over %d bytes", tooBig.Short(), wu.MaxCompareBytes)
	f.mu.Unlock()
	big := strings.Repeat("1.0 ", wu.MaxCompareBytes/4+1)
	bigA, bigB := f.output(big+"1.0"), f.output(big+"1.0000000001")
	tol := wu.Tolerance{Rel: 1e-6}
	f.setPending(
		sched.Comparison{Unit: "gone", A: a, B: gone, Tolerance: tol},
		sched.Comparison{Unit: "refused", A: tooBig, B: a, Tolerance: tol},
		sched.Comparison{Unit: "large", A: bigA, B: bigB, Tolerance: tol},
	)
	f.pass()
	got := f.verdicts(t)
	if len(got) != 3 {
		t.Fatalf("verdicts %+v, want 3", got)
	}
	for _, v := range got {
		if v.Agree {
			t.Errorf("unit %s: agreed on an output it could not compare", v.Unit)
		}
	}
	if log := f.logged(); !strings.Contains(log, "unit=gone") || !strings.Contains(log, "unit=refused") || !strings.Contains(log, "unreadable output") {
		t.Errorf("log does not name the unreadable outputs:\n%s", log)
	}
}

// TestVerdictsAreNotResentUntilTheyCouldHaveBeenApplied: a pair the
// scheduler still lists after its verdict was appended is left alone for
// the resend time, then sent again (the log de-duplicates by record id).
func TestVerdictsAreNotResentUntilTheyCouldHaveBeenApplied(t *testing.T) {
	f := start(t)
	c := sched.Comparison{Unit: "u", A: f.output("1"), B: f.output("1.0"), Tolerance: wu.Tolerance{Abs: 0.1}}
	f.setPending(c)
	f.pass()
	f.advance(resend)
	f.pass()
	if n := len(f.verdicts(t)); n != 1 {
		t.Fatalf("%d verdicts within the resend time, want 1", n)
	}
	f.advance(time.Second)
	f.pass()
	if got := f.verdicts(t); len(got) != 2 || got[1] != got[0] {
		t.Fatalf("verdicts after the resend time: %+v, want the same one twice", got)
	}
	// Once applied, the scheduler lists it no more: nothing more is sent.
	f.setPending()
	f.advance(time.Hour)
	f.pass()
	if n := len(f.verdicts(t)); n != 2 {
		t.Errorf("%d verdicts after the pair was settled, want 2", n)
	}
}

// TestAppendFailuresAreRetried: a verdict the log refused is sent again at
// the next pass, and the rest of a pass waits for the log; one the log
// already holds (a duplicate) counts as sent.
func TestAppendFailuresAreRetried(t *testing.T) {
	f := start(t)
	x, y := f.output("1"), f.output("2")
	f.setPending(
		sched.Comparison{Unit: "first", A: x, B: y},
		sched.Comparison{Unit: "second", A: x, B: y},
	)
	f.mu.Lock()
	f.appendFn = func(vpeer.Record) error { return errors.New("no quorum") }
	f.mu.Unlock()
	f.pass()
	if n := len(f.verdicts(t)); n != 0 {
		t.Fatalf("%d verdicts appended by a failing log", n)
	}
	if log := f.logged(); !strings.Contains(log, "no quorum") {
		t.Errorf("the append failure is not logged:\n%s", log)
	}

	f.mu.Lock()
	f.appendFn = func(r vpeer.Record) error {
		if strings.Contains(r.ID, ".first.") {
			return vpeer.ErrDuplicate
		}
		return nil
	}
	f.mu.Unlock()
	f.pass()
	got := f.verdicts(t)
	if len(got) != 1 || got[0].Unit != "second" {
		t.Fatalf("verdicts %+v, want the second unit's (the first is a duplicate)", got)
	}
	f.mu.Lock()
	f.appendFn = nil
	f.mu.Unlock()
	f.pass()
	if n := len(f.verdicts(t)); n != 1 {
		t.Errorf("%d verdicts: a duplicate was sent again within the resend time", n)
	}
}

func TestStopsWhenItsContextEnds(t *testing.T) {
	f := start(t)
	f.setPending(sched.Comparison{Unit: "u", A: f.output("1"), B: f.output("2")})
	f.cancel()
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if n := len(f.verdicts(t)); n != 0 {
		t.Errorf("%d verdicts from a stopped validator", n)
	}
}
