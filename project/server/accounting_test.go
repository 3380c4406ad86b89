package server

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/credit"
	"github.com/momonga-project/momonga/project/duties"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/sched/schedtest"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/jetlog"
	"github.com/momonga-project/momonga/vpeer/vpeertest"
	wu "github.com/momonga-project/momonga/workunits"
)

// TestCreditCountedOnceWhileBothPeersLoseMembers is the acceptance test of
// the two virtual peers talking: the scheduler's peer and the accounting
// peer, three members each, in a serving process and a joined spare, while
// simulated volunteers work through a batch. Members of both groups are
// killed, lease holders among them, so the forwarder moves between members
// and processes; beside it a second forwarder that believes it holds the
// lease delivers the same outputs concurrently, and old deliveries and
// deliveries with a gap are appended to the accounting log on purpose. At the
// end the accounting peer must have counted every grant exactly once —
// its totals are the sum of the scheduler's grants, per host too — the
// outbox must be empty, and every accounting member must be in the same
// state.
func TestCreditCountedOnceWhileBothPeersLoseMembers(t *testing.T) {
	const volunteers, units = 12, 300
	p := startProject(t, 3, units)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	spare, err := Start(ctx, joining(t, p.srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	schedGroups := []*vpeer.Group{p.srv.Group(), spare.Group()}
	acctGroups := []*vpeer.Group{p.srv.Acct(), spare.Acct()}

	// A forwarder that always thinks it leads, and records every output it
	// reads, for the injector to deliver again.
	var (
		seenMu sync.Mutex
		seen   = map[uint64]accounting.Grant{}
	)
	rogue := p.srv.duties.Load().Forwarder()
	rogue.Leading = func() bool { return true }
	rogue.Ack = func(ctx context.Context, through uint64) error {
		return duties.Ack(ctx, jetlog.Requests{Log: p.srv.log, NC: p.srv.nc}, through)
	}
	read := rogue.Outbox
	rogue.Outbox = func(ctx context.Context, max int) ([]accounting.Grant, error) {
		out, err := read(ctx, max)
		seenMu.Lock()
		for _, g := range out {
			seen[g.ID] = g
		}
		seenMu.Unlock()
		return out, err
	}
	rogue.Wake, rogue.Interval, rogue.Batch = nil, 15*time.Millisecond, 7
	bgCtx, stopBg := context.WithCancel(ctx)
	defer stopBg()
	var bg sync.WaitGroup
	defer bg.Wait()
	bg.Go(func() { rogue.Run(bgCtx) })
	injected := atomic.Int64{}
	bg.Go(func() {
		for bgCtx.Err() == nil {
			select {
			case <-bgCtx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			seenMu.Lock()
			var old []accounting.Grant
			if n := len(seen); n > 0 {
				from := uint64(1 + rand.IntN(n))
				for id := from; id < from+5; id++ {
					if g, ok := seen[id]; ok {
						old = append(old, g)
					}
				}
			}
			seenMu.Unlock()
			if len(old) == 0 {
				continue
			}
			if rand.IntN(4) == 0 {
				// A delivery with a gap: ids far beyond the last output.
				for i := range old {
					old[i].ID += 1 << 20
				}
			}
			d := accounting.Delivery{V: 1, Source: sched.OutputSource, Grants: old}
			if _, err := p.srv.acctLog.Append(bgCtx, vpeer.Record{Payload: wu.Encode(d)}); err == nil {
				injected.Add(1)
			}
		}
	})

	var (
		wg      sync.WaitGroup
		running atomic.Int32
	)
	hist := schedtest.NewHistory()
	for i := range volunteers {
		v := newVolunteer(t, p.srv.ClientURL(), i, hist)
		running.Add(1)
		wg.Go(func() {
			defer running.Add(-1)
			if err := v.Hello(ctx); err != nil {
				t.Error(err)
				return
			}
			for {
				out, err := v.Work(ctx)
				if err != nil || out.Err != "" {
					t.Errorf("%s: work: %v %s", v.Host, err, out.Err)
					return
				}
				if len(out.Tasks) == 0 {
					return
				}
				select {
				case <-time.After(time.Duration(10+rand.IntN(30)) * time.Millisecond):
				case <-ctx.Done():
				}
				if res, err := v.Result(ctx, out.Tasks[0]); err != nil || res.Err != "" {
					t.Errorf("%s: result: %v %s", v.Host, err, res.Err)
					return
				}
			}
		})
	}

	// Kill a member of one group or the other whenever both are whole, the
	// lease holder every other time.
	kills := map[string]int{}
	leaders := map[string]int{}
	killed := map[string]bool{}
	spareLed := false // the forwarder may then have run in the spare
	for n := 0; running.Load() > 0 && ctx.Err() == nil; {
		spareLed = spareLed || spare.Group().Leading()
		groups := schedGroups
		if n%2 == 1 {
			groups = acctGroups
		}
		ms := slices.DeleteFunc(members(groups), func(m vpeer.MemberStatus) bool { return killed[m.ID] })
		leader := slices.IndexFunc(ms, func(m vpeer.MemberStatus) bool { return m.Leading })
		if len(ms) < 3 || leader < 0 || slices.ContainsFunc(ms, func(m vpeer.MemberStatus) bool { return !m.Ready }) {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		victim := ms[rand.IntN(len(ms))]
		if n/2%2 == 0 {
			victim = ms[leader]
		}
		for _, g := range groups {
			if g.Kill(victim.ID) {
				killed[victim.ID] = true
				kills[g.Name()]++
				if victim.Leading {
					leaders[g.Name()]++
				}
				t.Logf("killed %s of %s (applied %d, lease holder %v)", victim.ID, g.Name(), victim.Applied, victim.Leading)
			}
		}
		n++
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if kills[Group] < 2 || kills[AcctGroup] < 2 || leaders[Group] < 1 || leaders[AcctGroup] < 1 {
		t.Fatalf("kills %v, lease holders %v, while the volunteers worked: make the batch longer", kills, leaders)
	}

	waitDelivered(t, p.srv, units)
	stopBg()
	bg.Wait()

	// Each grant counted once: every unit was valid once and claimed one CPU
	// second at the default benchmark.
	each := credit.Claim(1, 1e9)
	want := float64(units) * each
	acctLast, err := p.srv.acctLog.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var all []*vpeer.Member
	for _, g := range acctGroups {
		all = append(all, g.Members()...)
	}
	for _, m := range all {
		if err := m.WaitApplied(ctx, acctLast); err != nil {
			t.Fatal(err)
		}
		var total float64
		var results int
		var through uint64
		m.Query(func() {
			a := acctOf(m)
			total, results = a.Totals()
			through = a.Through(sched.OutputSource)
		})
		if results != units || through != units || math.Abs(total-want) > 1e-9*want {
			t.Errorf("accounting member %s: %d results, credit %.9f, through %d; want %d, %.9f, %d", m.ID(), results, total, through, units, want, units)
		}
	}
	st := p.srv.Status()
	if st.Error != nil {
		t.Fatal(st.Error)
	}
	for _, h := range st.Hosts {
		if math.Abs(h.Credit-float64(h.Valid)*each) > 1e-9 {
			t.Errorf("host %s: %d valid results, credit %g; want %g", h.ID, h.Valid, h.Credit, float64(h.Valid)*each)
		}
	}
	g := sameStateOf(t, p.srv, AcctGroup)
	t.Logf("kills %v (lease holders %v); the spare held the scheduler's lease: %v; %d deliveries injected; %d accounting members agree at %d; credit %.6f for %d results",
		kills, leaders, spareLed, injected.Load(), len(g.Members), g.Common, want, units)
	if injected.Load() == 0 {
		t.Error("no duplicate delivery was injected")
	}
}

// waitDelivered waits until the scheduler has made outputs outputs and had
// every one acknowledged by the accounting peer: its outbox is empty.
func waitDelivered(t *testing.T, srv *Server, outputs uint64) {
	t.Helper()
	vpeertest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		var last uint64
		var pending int
		if err := query(srv, func(m *sched.Machine) { last, pending = m.LastOutput(), len(m.Outbox(0)) }); err != nil {
			return err
		}
		if last != outputs || pending != 0 {
			return fmt.Errorf("%d outputs made, %d not acknowledged; want %d made, all acknowledged", last, pending, outputs)
		}
		return nil
	})
}
