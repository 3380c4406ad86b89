package duties

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/blobs"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/sched/schedtest"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/vpeertest"
	wu "github.com/momonga-project/momonga/workunits"
)

// world is a scheduler and an accounting peer on in-memory logs, a blob
// store in memory, and the duties of a process running both.
type world struct {
	t       *testing.T
	sched   *schedtest.Peer
	acctLog *vpeer.MemLog
	acct    *vpeertest.RunningMember
	blobs   *blobs.Mem
	revoker *revoker
	pushed  *revoker // the hosts told of work, by call
	duties  *Duties
	seqs    map[string]uint64
}

// revoker records what the duties revoke.
type revoker struct {
	mu    sync.Mutex
	calls [][]string
}

func (r *revoker) Revoked(hosts []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, slices.Clone(hosts))
}

// notifier records the hosts told of work in a revoker's list.
type notifier struct{ *revoker }

func (n notifier) WorkWaiting(hosts []string) { n.Revoked(hosts) }

func (r *revoker) all() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, blobs: &blobs.Mem{}, revoker: &revoker{}, pushed: &revoker{}, seqs: map[string]uint64{}, acctLog: vpeer.NewMemLog()}
	w.sched = schedtest.Start(t, schedtest.Config{Sched: sched.Config{Lease: time.Hour}, Outputs: func(seq uint64, outs []any) {
		if w.duties != nil {
			w.duties.Outputs(seq, outs)
		}
	}})
	w.acct = vpeertest.StartMachine(t, vpeer.MemberConfig{Log: w.acctLog, Machine: accounting.New(), Reply: w.sched.Inboxes.Reply})
	vpeertest.WaitReady(t, w.acct)
	return w
}

// start runs the duties until the test ends, looking for work every
// interval when no output prompts them.
func (w *world) start(interval time.Duration) {
	w.duties = New(Config{
		Sched:            w.sched,
		Acct:             vpeertest.Requests{Log: w.acctLog, Inboxes: w.sched.Inboxes},
		Blobs:            w.blobs,
		Revoker:          w.revoker,
		Notifier:         notifier{w.pushed},
		ValidateInterval: interval, GCInterval: interval, CreditInterval: interval,
		Logger: vpeertest.TestLogger(w.t),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.duties.Run(ctx); close(done) }()
	w.t.Cleanup(func() { cancel(); <-done })
}

// req sends a command from host through the log and returns the reply.
func (w *world) req(host, op string, body any, out any) *wu.Error {
	w.t.Helper()
	w.seqs[host]++
	cmd := wu.Command{V: 1, Op: op, Host: host, Seq: w.seqs[host], Body: wu.Encode(body)}
	ctx, cancel := context.WithTimeout(context.Background(), vpeertest.Timeout)
	defer cancel()
	raw, err := w.sched.Request(ctx, vpeer.Record{Payload: wu.Encode(cmd)})
	if err != nil {
		w.t.Fatal(err)
	}
	var ack wu.Ack
	if err := json.Unmarshal(raw, &ack); err != nil {
		w.t.Fatalf("%s: %s: %v", op, raw, err)
	}
	if ack.Error == nil && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			w.t.Fatal(err)
		}
	}
	return ack.Error
}

func (w *world) must(e *wu.Error) {
	w.t.Helper()
	if e != nil {
		w.t.Fatal(e)
	}
}

// batch adds app (with pol) and n units, and says hello for hosts.
func (w *world) batch(app string, pol wu.Policy, n int, hosts ...string) {
	w.t.Helper()
	w.must(w.req("adm", wu.OpAddApp, wu.AddApp{V: 1, Name: app, Hash: wu.HashOf([]byte(app)), Size: 3, Policy: pol}, nil))
	spec := wu.Submit{V: 1, Batch: "b", App: app}
	for i := range n {
		spec.Units = append(spec.Units, wu.UnitSpec{Args: []string{fmt.Sprint(i)}})
	}
	w.must(w.req("adm", wu.OpSubmit, spec, nil))
	for _, h := range hosts {
		var r wu.HelloReply
		w.must(w.req(h, wu.OpHello, wu.Hello{V: 1, Host: wu.HostInfo{Name: h, CPUs: 4, FLOPS: 1e9}}, &r))
		w.seqs[h] = r.NextSeq - 1
	}
}

func (w *world) work(host string, slots int) []wu.Assignment {
	w.t.Helper()
	var r wu.WorkReply
	w.must(w.req(host, wu.OpWork, wu.WorkRequest{V: 1, Seq: w.seqs[host] + 1, Slots: slots}, &r))
	return r.Assignments
}

// report reports output for task, storing it as the gateway would have.
func (w *world) report(host string, a wu.Assignment, output string) {
	w.t.Helper()
	h, _ := w.blobs.Put(context.Background(), []byte(output))
	w.must(w.req(host, wu.OpResult, wu.Report{V: 1, Seq: w.seqs[host] + 1, Task: a.Task, Outcome: wu.OutcomeSuccess, Output: h, OutputSize: int64(len(output)), CPUSeconds: 10}, nil))
}

// query reads the scheduler.
func (w *world) query(fn func(*sched.Machine)) {
	w.t.Helper()
	if err := w.sched.Query(context.Background(), fn); err != nil {
		w.t.Fatal(err)
	}
}

// TestCreditReachesTheAccountingPeerOnce: grants leave the scheduler's
// outbox only for the accounting peer, while a member here holds the lease,
// and count once even with a second forwarder that believes it holds the
// lease too.
func TestCreditReachesTheAccountingPeerOnce(t *testing.T) {
	w := newWorld(t)
	w.sched.SetLeading(false)
	w.start(20 * time.Millisecond) // the lease comes with no output
	w.batch("primes", wu.Policy{Replication: 1, Quorum: 1}, 6, "h1")
	for _, a := range w.work("h1", 6) {
		w.report("h1", a, "42\n")
	}
	var pending int
	w.query(func(m *sched.Machine) { pending = len(m.Outbox(0)) })
	if pending != 6 {
		t.Fatalf("%d grants in the outbox, want 6", pending)
	}
	rogue := w.duties.Forwarder()
	rogue.Leading = func() bool { return true }
	rogue.Batch = 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rogue.Run(ctx)
	w.sched.SetLeading(true)
	vpeertest.CheckFor(t, vpeertest.Timeout, 10*time.Millisecond, func() error {
		w.query(func(m *sched.Machine) { pending = len(m.Outbox(0)) })
		if pending != 0 {
			return fmt.Errorf("%d grants not acknowledged", pending)
		}
		return nil
	})
	var (
		through uint64
		results int
	)
	w.acct.Query(func() {
		a := w.acct.Machine().(*accounting.Machine)
		through = a.Through(sched.OutputSource)
		_, results = a.Totals()
	})
	if through != 6 || results != 6 {
		t.Fatalf("the accounting peer applied outputs through %d, counting %d results; want 6 and 6", through, results)
	}
}

// TestLeaseHolderComparesAndCollects: outputs that differ in their last
// digit are compared by the lease holder's validator, whose verdict
// validates the unit; a checkpoint replaced by a newer one is deleted from
// the blob store and the deletion recorded in the log. The duties never
// look unprompted here: the scheduler's outputs alone set them to work.
func TestLeaseHolderComparesAndCollects(t *testing.T) {
	w := newWorld(t)
	w.start(time.Hour)
	w.batch("float", wu.Policy{Replication: 2, Quorum: 2, Tolerance: wu.Tolerance{Rel: 1e-6}}, 1, "h1", "h2")
	a, b := w.work("h1", 1)[0], w.work("h2", 1)[0]

	old, _ := w.blobs.Put(context.Background(), []byte("checkpoint 1"))
	newer, _ := w.blobs.Put(context.Background(), []byte("checkpoint 2"))
	for i, h := range []wu.Hash{old, newer} {
		c := wu.CheckpointRef{Hash: h, Size: 12, Seq: uint64(i + 1), Progress: 0.5}
		w.must(w.req("h1", wu.OpCkpt, wu.CheckpointReport{V: 1, Seq: w.seqs["h1"] + 1, Task: a.Task, App: a.AppHash, Checkpoint: c}, nil))
	}
	vpeertest.CheckFor(t, vpeertest.Timeout, 10*time.Millisecond, func() error {
		var garbage []wu.Hash
		w.query(func(m *sched.Machine) { garbage = m.Garbage() })
		if _, stored, _ := w.blobs.Size(context.Background(), old); stored || len(garbage) != 0 {
			return fmt.Errorf("old checkpoint stored %v, garbage list %v", stored, garbage)
		}
		return nil
	})
	if _, stored, _ := w.blobs.Size(context.Background(), newer); !stored {
		t.Fatal("the newest checkpoint was deleted")
	}

	w.report("h1", a, "x 1.0000000\n")
	w.report("h2", b, "x 1.0000001\n")
	vpeertest.CheckFor(t, vpeertest.Timeout, 10*time.Millisecond, func() error {
		var st wu.StatusReply
		w.query(func(m *sched.Machine) { st = m.Status() })
		if v := st.Batches[0].Valid; v != 1 {
			return fmt.Errorf("%d units valid", v)
		}
		return nil
	})
}

// TestRevokedHostsAreClosed: the Revoker hears of hosts revoked before the
// duties started (from the state) and of each revoked later (from the
// outputs).
func TestRevokedHostsAreClosed(t *testing.T) {
	w := newWorld(t)
	w.batch("primes", wu.Policy{Replication: 1, Quorum: 1}, 1, "h1", "h2", "h3")
	w.must(w.req("adm", wu.OpHostRevoke, wu.HostRevoke{V: 1, Host: "h1"}, nil))
	w.start(time.Hour)
	vpeertest.CheckFor(t, vpeertest.Timeout, 10*time.Millisecond, func() error {
		if len(w.revoker.all()) == 0 {
			return errors.New("nothing revoked")
		}
		return nil
	})
	w.must(w.req("adm", wu.OpHostRevoke, wu.HostRevoke{V: 1, Host: "h3"}, nil))
	vpeertest.CheckFor(t, vpeertest.Timeout, 10*time.Millisecond, func() error {
		got := slices.Concat(w.revoker.all()...)
		if !slices.Contains(got, "h3") {
			return fmt.Errorf("revoked %v", got)
		}
		if !slices.Contains(got, "h1") || slices.Contains(got, "h2") {
			return fmt.Errorf("revoked %v, want h1 and h3", got)
		}
		return nil
	})
}

// TestForwarderRoundStopsAtAGap checks the forwarder's handling of
// receipts: it acknowledges only what the accounting peer applied, and
// reports an accounting peer that lacks what the outbox no longer holds.
func TestForwarderRoundStopsAtAGap(t *testing.T) {
	out := []accounting.Grant{{ID: 5, Host: "h"}, {ID: 6, Host: "h"}}
	var acked []uint64
	f := &Forwarder{
		Leading: func() bool { return true },
		Outbox:  func(context.Context, int) ([]accounting.Grant, error) { return out, nil },
		Ack:     func(_ context.Context, through uint64) error { acked = append(acked, through); return nil },
		Batch:   2,
	}
	for _, c := range []struct {
		rc      accounting.Receipt
		err     bool
		acked   []uint64
		comment string
	}{
		{accounting.Receipt{Through: 6}, false, []uint64{6}, "all applied"},
		{accounting.Receipt{Through: 8}, false, []uint64{8}, "applied beyond this delivery by another forwarder"},
		{accounting.Receipt{Through: 4, Error: wu.Errorf(wu.CodeBadRequest, "bad")}, true, nil, "refused"},
		{accounting.Receipt{Through: 2, Error: wu.Errorf(wu.CodeConflict, "gap")}, true, nil, "the outbox starts after the accounting peer"},
	} {
		acked = nil
		f.Deliver = func(context.Context, accounting.Delivery) (accounting.Receipt, error) { return c.rc, nil }
		more, err := f.Round(context.Background())
		if (err != nil) != c.err || !slices.Equal(acked, c.acked) || (err == nil && !more) {
			t.Errorf("%s: more %v, err %v, acked %v", c.comment, more, err, acked)
		}
	}
	f.Leading = func() bool { return false }
	f.Deliver = func(context.Context, accounting.Delivery) (accounting.Receipt, error) {
		return accounting.Receipt{}, errors.New("delivered without the lease")
	}
	if _, err := f.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// An acknowledgement beyond the last output the scheduler made is refused
// by it, and the forwarder hears so instead of taking it as done.
func TestAcknowledgementRefusedIsAnError(t *testing.T) {
	w := newWorld(t)
	err := Ack(context.Background(), w.sched, 1_000_000)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("acknowledging output 1000000 of none: %v, want a refusal", err)
	}
}

// A delivery whose id is in the log already is not applied again; the
// forwarder asks how far the accounting peer got instead.
func TestRepeatedDeliveryAsksHowFar(t *testing.T) {
	w := newWorld(t)
	acct := vpeertest.Requests{Log: w.acctLog, Inboxes: w.sched.Inboxes}
	d := accounting.Delivery{V: accounting.Version, Source: sched.OutputSource, Grants: []accounting.Grant{{ID: 1, Host: "h", Credit: 1}}}
	for i := range 2 {
		rc, err := Deliver(context.Background(), acct, d)
		if err != nil || rc.Error != nil || rc.Through != 1 {
			t.Fatalf("delivery %d: receipt %+v, %v", i+1, rc, err)
		}
	}
	var credit float64
	w.acct.Query(func() { credit, _ = w.acct.Machine().(*accounting.Machine).Totals() })
	if credit != 1 {
		t.Fatalf("credit %v after the same delivery twice, want 1", credit)
	}
}

// TestIdleHostsAreToldByTheLeaseHolder: the hosts a submission is for hear
// of it from the process holding the lease only; a process that takes the
// lease tells the hosts still waiting while tasks wait.
func TestIdleHostsAreToldByTheLeaseHolder(t *testing.T) {
	w := newWorld(t)
	w.batch("primes", wu.Policy{Replication: 1, Quorum: 1}, 1, "h1", "h2", "h3")
	w.work("h1", 1)
	if got := w.work("h2", 1); len(got) != 0 {
		t.Fatal("h2 got work from an empty queue")
	}
	w.work("h3", 1)
	w.start(time.Hour)
	// The duties have looked at the lease once, while it was held and no
	// task waited: the flip below falls between two of their looks.
	vpeertest.CheckFor(t, vpeertest.Timeout, time.Millisecond, func() error {
		if w.sched.TermAsked() == 0 {
			return errors.New("the duties have not looked at the lease")
		}
		return nil
	})
	submit := func(args string) {
		w.must(w.req("adm", wu.OpSubmit, wu.Submit{V: 1, Batch: "b", App: "primes", Units: []wu.UnitSpec{{Args: []string{args}}}}, nil))
	}
	// The submission names h2 (idle, first by id) while this process does
	// not hold the lease: nobody tells it.
	w.sched.SetLeading(false)
	submit("x")
	w.sched.SetLeading(true) // takes the lease: h3, still waiting, is told
	vpeertest.CheckFor(t, vpeertest.Timeout, 10*time.Millisecond, func() error {
		if got := w.pushed.all(); len(got) != 1 || !slices.Equal(got[0], []string{"h3"}) {
			return fmt.Errorf("told %v; want h3, on taking the lease", got)
		}
		return nil
	})
	if got := w.work("h2", 1); len(got) != 1 {
		t.Fatal("h2 did not take the task")
	}
	submit("y")
	vpeertest.CheckFor(t, vpeertest.Timeout, 10*time.Millisecond, func() error {
		if got := w.pushed.all(); len(got) != 2 || !slices.Equal(got[1], []string{"h3"}) {
			return fmt.Errorf("told %v; want h3, waiting still, for the second submission", got)
		}
		return nil
	})
}
