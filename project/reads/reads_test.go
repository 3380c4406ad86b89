package reads

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/credit"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/sched/schedtest"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/vpeertest"
	wu "github.com/momonga-project/momonga/workunits"
)

// memberPeer is one member over a log, as a Peer.
type memberPeer struct {
	m   *vpeertest.RunningMember
	log vpeer.Log
}

func (p memberPeer) Query(_ context.Context, fn func(*vpeer.Member)) error {
	p.m.Query(func() { fn(p.m.Member) })
	return nil
}

func (p memberPeer) QueryLatest(ctx context.Context, fn func(*vpeer.Member)) error {
	last, err := p.log.LastSeq(ctx)
	if err != nil {
		return err
	}
	if err := p.m.WaitApplied(ctx, last); err != nil {
		return err
	}
	return p.Query(ctx, fn)
}

// command appends a command from host and returns its reply.
func command(t *testing.T, p *schedtest.Peer, host string, seq uint64, op string, body any) []byte {
	t.Helper()
	raw, err := p.Request(context.Background(), vpeer.Record{Payload: wu.Encode(wu.Command{V: 1, Op: op, Host: host, Seq: seq, Body: wu.Encode(body)})})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestCreditShownOnceWhateverTheAccountingPeerHasApplied: credit in the
// status is the accounting peer's plus the grants in the scheduler's
// outbox it has not applied, so it is the same, and counted once, before
// the forwarder delivers, while the outbox still holds grants the
// accounting peer has applied, and after the acknowledgement trims it.
func TestCreditShownOnceWhateverTheAccountingPeerHasApplied(t *testing.T) {
	sp := schedtest.Start(t, schedtest.Config{Sched: sched.Config{Lease: time.Hour}})
	acctLog := vpeer.NewMemLog()
	am := vpeertest.StartMachine(t, vpeer.MemberConfig{Log: acctLog, Machine: accounting.New(), Reply: sp.Inboxes.Reply})
	vpeertest.WaitReady(t, am)
	r := Reads{Sched: memberPeer{sp.Members[0], sp}, Acct: memberPeer{am, acctLog}}

	command(t, sp, "adm", 1, wu.OpAddApp, wu.AddApp{V: 1, Name: "a", Hash: wu.HashOf([]byte("a")), Size: 1})
	command(t, sp, "adm", 2, wu.OpSubmit, wu.Submit{V: 1, Batch: "b", App: "a", Replication: 1, Quorum: 1,
		Units: []wu.UnitSpec{{Args: []string{"1"}}, {Args: []string{"2"}}, {Args: []string{"3"}}}})
	command(t, sp, "h1", 0, wu.OpHello, wu.Hello{V: 1, Host: wu.HostInfo{Name: "h1", CPUs: 4, FLOPS: 1e9}})
	var work wu.WorkReply
	if err := json.Unmarshal(command(t, sp, "h1", 1, wu.OpWork, wu.WorkRequest{V: 1, Seq: 1, Slots: 3}), &work); err != nil || len(work.Assignments) != 3 {
		t.Fatalf("work: %+v %v", work, err)
	}
	for i, a := range work.Assignments {
		command(t, sp, "h1", uint64(2+i), wu.OpResult, wu.Report{V: 1, Seq: uint64(2 + i), Task: a.Task, Outcome: wu.OutcomeSuccess, Output: wu.HashOf([]byte("x")), OutputSize: 1, CPUSeconds: 1})
	}
	want := 3 * credit.Claim(1, 1e9)
	check := func(when string) {
		t.Helper()
		st := r.Status()
		if st.Error != nil || len(st.Hosts) != 1 || math.Abs(st.Hosts[0].Credit-want) > 1e-12 {
			t.Fatalf("%s: status %+v, want host credit %g", when, st, want)
		}
		acc := r.Accounts()
		if acc.Error != nil || len(acc.Users) != 0 {
			t.Fatalf("%s: accounts %+v", when, acc)
		}
	}
	check("before any delivery")

	var out []accounting.Grant
	_ = sp.Query(context.Background(), func(m *sched.Machine) { out = m.Outbox(0) })
	deliver := func(gs []accounting.Grant) {
		d := accounting.Delivery{V: accounting.Version, Source: sched.OutputSource, Grants: gs}
		if _, err := (vpeertest.Requests{Log: acctLog, Inboxes: sp.Inboxes}).Request(context.Background(), vpeer.Record{Payload: wu.Encode(d)}); err != nil {
			t.Fatal(err)
		}
	}
	deliver(out[:2])
	check("with two grants applied and still in the outbox")
	command(t, sp, "duties", 0, sched.OpOutputsAcked, sched.OutputsAcked{V: 1, Through: 2})
	check("with two grants acknowledged")
	deliver(out[2:])
	command(t, sp, "duties", 0, sched.OpOutputsAcked, sched.OutputsAcked{V: 1, Through: 3})
	check("with every grant delivered and acknowledged")

	if results, err := r.Results(wu.ResultsQuery{V: 1, Batch: "b"}); err != nil || len(results.Units) != 3 {
		t.Fatalf("results: %+v %v", results, err)
	}
	if hc, ok := r.HostByNKey("nobody"); ok {
		t.Fatalf("a host for an unknown key: %+v", hc)
	}
}
