// Package reads answers what the project's tools and pages ask of its
// state (DESIGN §5 "Reads", §9): the status, a batch's results and the
// accounts, from the scheduler's virtual peer with the credit its
// accounting peer counts.
//
// Status and Results read as of the log's last record when asked, like
// etcd's ReadIndex: they show every request a volunteer or scientist was
// told is done, even when the reply came from a member of another process.
// Credit is the accounting peer's plus the grants still in the scheduler's
// outbox that it has not applied, so it shows as soon as it is granted and
// never twice.
package reads

import (
	"context"
	"fmt"
	"time"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// Peer is this process's part of a virtual peer (vpeer.Group).
type Peer interface {
	// Query runs fn on a ready member here.
	Query(ctx context.Context, fn func(*vpeer.Member)) error
	// QueryLatest runs fn on a member here once it has applied every
	// record the log held when called.
	QueryLatest(ctx context.Context, fn func(*vpeer.Member)) error
}

// Reads reads a project's state.
type Reads struct {
	Sched, Acct Peer
}

// Timeout bounds how long a read waits for a member to be ready, as while
// the only one is being replaced.
const Timeout = 10 * time.Second

func schedOf(m *vpeer.Member) *sched.Machine     { return m.Machine().(*sched.Machine) }
func acctOf(m *vpeer.Member) *accounting.Machine { return m.Machine().(*accounting.Machine) }

// notReady is the answer while no member can be asked.
func notReady(peer string) *wu.Error {
	return wu.Errorf(wu.CodeInternal, "the %s is not ready; retry in a few seconds", peer)
}

// Status is the scheduler's state in brief, with credit, as of the log's
// last record.
func (r Reads) Status() wu.StatusReply {
	var rep wu.StatusReply
	err := r.credited(r.Sched.QueryLatest, func(m *vpeer.Member) (time.Time, []wu.HostStatus, []wu.UserStatus, []wu.TeamStatus) {
		rep = schedOf(m).Status()
		rep.Applied = m.Applied()
		return rep.Now, rep.Hosts, rep.Users, rep.Teams
	})
	if err != nil {
		return wu.StatusReply{V: wu.WireVersion, Error: err}
	}
	return rep
}

// Results lists a page of one batch's results, as of the log's last record.
func (r Reads) Results(q wu.ResultsQuery) (rep wu.ResultsReply, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if qerr := r.Sched.QueryLatest(ctx, func(m *vpeer.Member) { rep, err = schedOf(m).Results(q) }); qerr != nil {
		return rep, notReady("scheduler")
	}
	return rep, err
}

// Accounts lists users and teams, e-mail addresses included: for the
// project's tools only.
func (r Reads) Accounts() (rep wu.AccountsReply) {
	err := r.credited(r.Sched.Query, func(m *vpeer.Member) (time.Time, []wu.HostStatus, []wu.UserStatus, []wu.TeamStatus) {
		s := schedOf(m)
		rep = s.Accounts()
		return s.Now(), nil, rep.Users, rep.Teams
	})
	if err != nil {
		return wu.AccountsReply{V: wu.WireVersion, Error: err}
	}
	return rep
}

// Credit is one host's credit and its owner's: what the host asks
// (vol.H.credit) for its volunteer's displays.
func (r Reads) Credit(host string) wu.CreditReply {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	var (
		owner   sched.Owner
		known   bool
		now     time.Time
		pending []accounting.Grant
		acked   uint64
	)
	err := r.Sched.Query(ctx, func(m *vpeer.Member) {
		s := schedOf(m)
		owner, known = s.OwnerOf(host)
		now = s.Now()
		pending, acked = outbox(s)
	})
	if err != nil {
		return wu.CreditReply{V: wu.WireVersion, Error: notReady("scheduler")}
	}
	if !known {
		return wu.CreditReply{V: wu.WireVersion, Error: wu.Errorf(wu.CodeNotFound, "host %s is not registered", host)}
	}
	rep := wu.CreditReply{V: wu.WireVersion, User: owner.UserName, Team: owner.TeamName}
	err = r.withLedger(ctx, acked, func(a *accounting.Machine) {
		l := a.LedgerOf(sched.OutputSource, pending, host, owner.User, owner.Team)
		h, u, t := l.Host(host), l.User(owner.User), l.Team(owner.Team)
		rep.HostCredit, rep.HostRAC = h.Credit, h.RAC.At(now)
		rep.UserCredit, rep.UserRAC = u.Credit, u.RAC.At(now)
		rep.TeamCredit, rep.TeamRAC = t.Credit, t.RAC.At(now)
	})
	if err != nil {
		return wu.CreditReply{V: wu.WireVersion, Error: notReady("accounting peer")}
	}
	return rep
}

// outbox reads the scheduler's outputs not yet acknowledged and the last
// one acknowledged.
func outbox(m *sched.Machine) (pending []accounting.Grant, acked uint64) {
	pending = m.Outbox(0)
	acked = m.LastOutput()
	if len(pending) > 0 {
		acked = pending[0].ID - 1
	}
	return pending, acked
}

// credited reads the scheduler through query with read, which returns the
// scheduler's time and the hosts, users and teams it listed; then sets
// their credit from the accounting peer, plus the scheduler's outputs it
// has not applied yet (read in the same query). The accounting member
// asked must have applied at least the last output the scheduler had seen
// acknowledged, or it is waited for.
func (r Reads) credited(query func(context.Context, func(*vpeer.Member)) error, read func(*vpeer.Member) (time.Time, []wu.HostStatus, []wu.UserStatus, []wu.TeamStatus)) *wu.Error {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	var (
		now     time.Time
		hosts   []wu.HostStatus
		users   []wu.UserStatus
		teams   []wu.TeamStatus
		pending []accounting.Grant
		acked   uint64
	)
	err := query(ctx, func(m *vpeer.Member) {
		now, hosts, users, teams = read(m)
		pending, acked = outbox(schedOf(m))
	})
	if err != nil {
		return notReady("scheduler")
	}
	err = r.withLedger(ctx, acked, func(a *accounting.Machine) {
		a.Ledger(sched.OutputSource, pending).Fill(now, hosts, users, teams)
	})
	if err != nil {
		return notReady("accounting peer")
	}
	return nil
}

// withLedger runs fn on an accounting member that has applied the
// scheduler's outputs through acked at least, waiting for one.
func (r Reads) withLedger(ctx context.Context, acked uint64, fn func(*accounting.Machine)) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		done := false
		err := r.Acct.Query(ctx, func(m *vpeer.Member) {
			a := acctOf(m)
			if a.Through(sched.OutputSource) < acked {
				return
			}
			fn(a)
			done = true
		})
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the accounting peer is behind the acknowledged output %d: %w", acked, ctx.Err())
		case <-t.C:
		}
	}
}

// query runs fn on a ready member's scheduler.
func (r Reads) query(fn func(*sched.Machine)) error {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	return r.Sched.Query(ctx, func(m *vpeer.Member) { fn(schedOf(m)) })
}

// HostByNKey finds the host that authenticates with the public key nkey:
// the auth callout asks (auth.Directory).
func (r Reads) HostByNKey(nkey string) (hc wu.HostCredential, ok bool) {
	_ = r.query(func(m *sched.Machine) { hc, ok = m.HostByNKey(nkey) })
	return hc, ok
}

// CodeSignature finds the BOINC code signature an app was added with for
// the file whose md5 is sum.
func (r Reads) CodeSignature(sum string) (sig string, ok bool) {
	_ = r.query(func(m *sched.Machine) { sig, ok = m.CodeSignature(sum) })
	return sig, ok
}

// UserByKeyHash finds the user holding the account key with hash h.
func (r Reads) UserByKeyHash(h wu.Hash) (id string, ok bool) {
	_ = r.query(func(m *sched.Machine) { id, ok = m.UserByKeyHash(h) })
	return id, ok
}
