package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/jetlog"
	wu "github.com/momonga-project/momonga/workunits"
)

// EndState is the group and the scheduler's state after the run, once the
// kills stopped and the replacements arrived.
type EndState struct {
	// Errors are the steps that did not finish within their time.
	Errors []string `json:"errors,omitempty"`
	// Retried counts requests that went unanswered during the run and were
	// sent again after it; Unanswered the volunteers still without an
	// answer after that.
	Retried    int `json:"retried"`
	Unanswered int `json:"unanswered"`
	// WholeAfter is how long after the run every position had a serving
	// member again.
	WholeAfter time.Duration `json:"whole_after_ns"`
	Members    int           `json:"members"`
	// Common is the snapshot point asked for after the run, Hashes the
	// members' state hashes there, Agree whether they are all equal.
	Common uint64            `json:"common"`
	Hashes map[string]string `json:"hashes,omitempty"`
	Agree  bool              `json:"agree"`
	// The same for the accounting peer, whose members run in the same
	// processes.
	AcctCommon uint64            `json:"acct_common"`
	AcctHashes map[string]string `json:"acct_hashes,omitempty"`
	AcctAgree  bool              `json:"acct_agree"`
	// Outputs is how many grants the scheduler made; AcctThrough how many
	// of them a fresh replica of the accounting peer found applied, and
	// AcctResults and AcctCredit what it counted.
	Outputs     uint64  `json:"outputs"`
	AcctThrough uint64  `json:"acct_through"`
	AcctResults int     `json:"acct_results"`
	AcctCredit  float64 `json:"acct_credit"`
	// Audit is a fresh replica built from the newest snapshot and the log
	// after the run (no slot, no lease, no replies): its hash at Common, and
	// whether it matches the members'.
	AuditHash   string `json:"audit_hash,omitempty"`
	AuditAgrees bool   `json:"audit_agrees"`

	// Exactly once, from the volunteers' side: tasks they were given, tasks
	// given to two hosts, results acknowledged, results refused
	// (not_assigned); and from the scheduler's: tasks reported, tasks out on
	// hosts, and disagreements between the two.
	Assigned      int      `json:"assigned"`
	Duplicates    []string `json:"duplicates,omitempty"`
	Acked         int      `json:"acked"`
	Refused       []string `json:"refused,omitempty"`
	StateReported int      `json:"state_reported"`
	StateValid    int      `json:"state_valid"`
	StateAssigned int      `json:"state_assigned"`
	Held          int      `json:"held"`
	Mismatches    []string `json:"mismatches,omitempty"`
	ExactlyOnce   bool     `json:"exactly_once"`
}

// settle ends the run: it retries the requests left unanswered, waits
// for every position to serve again, asks for a snapshot point and waits
// until every member has hashed its state there, then audits the
// scheduler's state against what the volunteers saw.
func (r *run) settle(ctx context.Context, l *load, srv *server.Server) EndState {
	var end EndState
	fail := func(format string, args ...any) { end.Errors = append(end.Errors, fmt.Sprintf(format, args...)) }
	ctx, cancel := context.WithTimeout(ctx, settle)
	defer cancel()

	stopped := time.Now()
	end.Unanswered = l.drain(ctx)
	end.Retried = l.retried
	if end.Unanswered > 0 {
		fail("%d volunteers had no answer to a request within %s after the run", end.Unanswered, settle)
	}
	for !r.whole() && ctx.Err() == nil {
		sleep(ctx, 20*time.Millisecond)
	}
	if !r.whole() {
		fail("the group was not whole again within %s after the run", settle)
	}
	end.WholeAfter = time.Since(stopped)

	nc, err := nats.Connect(srv.ClientURL(), nats.Name("momonga chaos"))
	if err != nil {
		fail("connect: %v", err)
		return end
	}
	defer nc.Close()
	mark, hashes, agree, err := r.hashesAt(ctx, nc, server.Group)
	end.Common, end.Hashes, end.Agree = mark, hashes, agree
	if err != nil {
		fail("%v", err)
		return end
	}
	end.Members = len(hashes)
	// The accounting peer's members live in the same processes and were
	// killed with them: they too must agree.
	end.AcctCommon, end.AcctHashes, end.AcctAgree, err = r.hashesAt(ctx, nc, server.AcctGroup)
	if err != nil {
		fail("accounting peer: %v", err)
	}

	st, hash, outputs, err := audit(ctx, nc, r.cfg.SnapshotEvery, mark, r.cfg.Logger)
	if err != nil {
		fail("audit: %v", err)
		return end
	}
	end.Outputs = outputs
	end.AcctThrough, end.AcctResults, end.AcctCredit, err = auditAccounting(ctx, nc, outputs, r.cfg.Logger)
	if err != nil {
		fail("accounting audit: %v", err)
	}
	end.AuditHash = hash
	if hash != "" {
		for _, h := range end.Hashes {
			end.AuditAgrees = h == hash
			break
		}
	}
	end.check(l, st)
	return end
}

// hashesAt asks group's members for a snapshot point and waits until every
// one of the run's members has hashed its state there: the point, the
// hashes by member and whether they are all equal.
func (r *run) hashesAt(ctx context.Context, nc *nats.Conn, group string) (uint64, map[string]string, bool, error) {
	mark, err := jetlog.RequestSnapshot(ctx, nc, group)
	if err != nil {
		return 0, nil, false, err
	}
	for ctx.Err() == nil {
		reports, _ := jetlog.GatherStatus(ctx, nc, group, 100*time.Millisecond)
		gs := vpeer.Summarize(reports)
		if len(gs) == 1 && len(gs[0].Members) == r.cfg.Members && gs[0].Common >= mark {
			agree := gs[0].Agree
			hashes := map[string]string{}
			for _, m := range gs[0].Members {
				i := slices.IndexFunc(m.Checkpoints, func(c vpeer.Checkpoint) bool { return c.Seq == mark })
				if i < 0 {
					agree = false
					continue
				}
				hashes[m.ID] = m.Checkpoints[i].Hash
			}
			agree = agree && len(slices.Compact(slices.Sorted(maps.Values(hashes)))) == 1
			return mark, hashes, agree, nil
		}
		sleep(ctx, 50*time.Millisecond)
	}
	return mark, nil, false, fmt.Errorf("the %d members of %s did not all hash their state at %d within %s", r.cfg.Members, group, mark, settle)
}

// check compares the scheduler's state with what the volunteers saw.
func (end *EndState) check(l *load, st wu.StatusReply) {
	l.mu.Lock()
	end.Assigned, end.Acked = len(l.assigned), len(l.acked)
	end.Duplicates, end.Refused = slices.Clone(l.dups), slices.Clone(l.refused)
	l.mu.Unlock()
	held := l.held()
	for _, n := range held {
		end.Held += n
	}
	for _, b := range st.Batches {
		end.StateReported += b.Tasks[wu.TaskReported]
		end.StateAssigned += b.Tasks[wu.TaskAssigned]
		end.StateValid += b.Valid
	}
	if end.StateReported != end.Acked {
		end.Mismatches = append(end.Mismatches, fmt.Sprintf("the scheduler has %d tasks reported, the volunteers' results for %d were acknowledged", end.StateReported, end.Acked))
	}
	if end.StateValid != end.Acked {
		end.Mismatches = append(end.Mismatches, fmt.Sprintf("the scheduler has %d work units valid, the volunteers' results for %d were acknowledged", end.StateValid, end.Acked))
	}
	for _, h := range st.Hosts {
		if h.Running != held[h.ID] {
			end.Mismatches = append(end.Mismatches, fmt.Sprintf("the scheduler has %d tasks out on %s, which holds %d", h.Running, h.ID, held[h.ID]))
		}
	}
	if end.StateAssigned != end.Held {
		end.Mismatches = append(end.Mismatches, fmt.Sprintf("the scheduler has %d tasks assigned, the volunteers hold %d", end.StateAssigned, end.Held))
	}
	// Every unit has one replica here: one grant for each valid unit,
	// counted once by the accounting peer.
	if end.Outputs != uint64(end.StateValid) || end.AcctThrough != end.Outputs || end.AcctResults != end.StateValid {
		end.Mismatches = append(end.Mismatches, fmt.Sprintf("the scheduler made %d grants for %d valid units; the accounting peer applied %d and counted %d results", end.Outputs, end.StateValid, end.AcctThrough, end.AcctResults))
	}
	end.ExactlyOnce = len(end.Duplicates) == 0 && len(end.Refused) == 0 && len(end.Mismatches) == 0 && end.Unanswered == 0
}

// audit builds one more replica of the scheduler, outside the group: it
// restores the newest snapshot from before mark, replays the log through
// mark and returns the scheduler's status and its own state hash at mark.
func audit(ctx context.Context, nc *nats.Conn, every, mark uint64, logger *slog.Logger) (st wu.StatusReply, hash string, outputs uint64, err error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return st, "", 0, err
	}
	log, err := jetlog.Bind(ctx, js, server.LogStream)
	if err != nil {
		return st, "", 0, err
	}
	snaps, err := jetlog.BindSnapshots(ctx, js, server.SnapshotsBucket)
	if err != nil {
		return st, "", 0, err
	}
	reg, err := jetlog.BindRegistry(ctx, js, server.MembersBucket)
	if err != nil {
		return st, "", 0, err
	}
	spec, err := vpeer.ReadSpec(ctx, reg, server.Group)
	if err != nil {
		return st, "", 0, err
	}
	var policy sched.Config
	if err := json.Unmarshal(spec.Params, &policy); err != nil {
		return st, "", 0, fmt.Errorf("the scheduler's policy: %w", err)
	}
	machine := sched.New(policy)
	m := vpeer.NewMember(vpeer.MemberConfig{
		ID: "chaos-audit", Log: log, Machine: machine, Snapshots: snapshotsBefore{snaps, mark}, SnapshotEvery: every,
		Lease: func() (uint64, bool) { return 0, false }, Logger: logger,
	})
	mctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- m.Run(mctx) }()
	defer func() { stop(); <-ran }()
	if err := m.WaitApplied(ctx, mark); err != nil {
		select {
		case err := <-ran:
			ran <- err
			return st, "", 0, fmt.Errorf("replica stopped: %w", err)
		default:
		}
		return st, "", 0, err
	}
	m.Query(func() { st, outputs = machine.Status(), machine.LastOutput() })
	for _, c := range m.Status().Checkpoints {
		if c.Seq == mark {
			return st, c.Hash, outputs, nil
		}
	}
	return st, "", outputs, errors.New("the replica has no hash at the snapshot point")
}

// auditAccounting builds one more replica of the accounting peer, outside
// the group, and follows its log until it has applied the scheduler's
// outputs up to want (the last one the scheduler made): how far it got,
// and the results and credit it counted.
func auditAccounting(ctx context.Context, nc *nats.Conn, want uint64, logger *slog.Logger) (through uint64, results int, credit float64, err error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, 0, 0, err
	}
	log, err := jetlog.Bind(ctx, js, server.AcctStream)
	if err != nil {
		return 0, 0, 0, err
	}
	snaps, err := jetlog.BindSnapshots(ctx, js, server.AcctSnapshotsBucket)
	if err != nil {
		return 0, 0, 0, err
	}
	machine := accounting.New()
	m := vpeer.NewMember(vpeer.MemberConfig{
		ID: "chaos-audit-acct", Log: log, Machine: machine, Snapshots: snaps,
		Lease: func() (uint64, bool) { return 0, false }, Logger: logger,
	})
	mctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- m.Run(mctx) }()
	defer func() { stop(); <-ran }()
	for {
		select {
		case <-m.Ready():
			m.Query(func() {
				through = machine.Through(sched.OutputSource)
				credit, results = machine.Totals()
			})
			if through >= want {
				return through, results, credit, nil
			}
		default:
		}
		select {
		case <-ctx.Done():
			return through, results, credit, fmt.Errorf("the accounting peer applied the scheduler's outputs up to %d of %d", through, want)
		case err := <-ran:
			ran <- err
			return through, results, credit, fmt.Errorf("accounting replica stopped: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// snapshotsBefore hides the snapshots at or after seq, so that a replica
// replays up to seq and hashes its own state there instead of restoring
// the hash stored with a snapshot.
type snapshotsBefore struct {
	vpeer.SnapshotStore
	seq uint64
}

func (s snapshotsBefore) List(ctx context.Context) ([]vpeer.SnapshotInfo, error) {
	all, err := s.SnapshotStore.List(ctx)
	return slices.DeleteFunc(all, func(i vpeer.SnapshotInfo) bool { return i.Seq >= s.seq }), err
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
