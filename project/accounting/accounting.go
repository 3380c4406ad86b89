// Package accounting is the project's second virtual peer (DESIGN §5, §9): a
// deterministic state machine that keeps the credit of hosts, users and
// teams, fed by the scheduler's outputs.
//
// The scheduler does not count credit itself. When it validates a result it
// appends a Grant, numbered in order, to an outbox in its replicated state;
// the scheduler group's lease holder delivers the outbox to this machine's
// log and, once this machine has applied the grants, acknowledges them in
// the scheduler's log so that the outbox is trimmed. Delivery is at least
// once (a new lease holder resends from the acknowledged point, two holders
// may overlap, the log's own de-duplication has a window); this machine
// makes it exactly once: it keeps, per source, the id of the last grant it
// applied, ignores a grant it has already applied and refuses one that
// skips ids, so that the sender resends from the first missing one.
//
// Like the scheduler it reads no clock, file or network: time comes with
// the grants (the scheduler's time when it granted), so every member that
// applies the same log holds the same totals.
package accounting

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/momonga-project/momonga/project/credit"
	"github.com/momonga-project/momonga/vpeer/fsm"
	wu "github.com/momonga-project/momonga/workunits"
)

// Version is the version of deliveries and receipts this package writes,
// and of its JSON snapshots; it reads every version up to it. Version 2
// added the history (history.go) to the snapshot; snapshots are binary
// from version 3 on (snapshot.go).
const Version = 2

// Grant is one output of the scheduler: credit granted for a validated
// result. Host, User and Team are ids as they were when the credit was
// granted (a user who changes team later keeps this credit in the old one).
type Grant struct {
	ID     uint64    `json:"id"` // the scheduler's output number, from 1, without gaps
	Task   string    `json:"task"`
	Host   string    `json:"host"`
	User   string    `json:"user,omitempty"` // "" for a host of an open project
	Team   string    `json:"team,omitempty"`
	Credit float64   `json:"credit"` // Cobblestones
	Sent   time.Time `json:"sent"`   // when the task went out: where its RAC starts
	At     time.Time `json:"at"`     // the scheduler's time when it granted

	// Opening marks a balance carried over from a scheduler that counted
	// credit itself, before this peer existed: it names one account (Host,
	// User or Team) and brings its total, recent average and results.
	Opening bool           `json:"opening,omitempty"`
	RAC     credit.Average `json:"rac,omitzero"`
	Results int            `json:"results,omitempty"`
}

// MaxGrant bounds the credit of one grant (a million years of a 1 PFLOPS
// machine), so that no total can overflow.
const MaxGrant = 1e17

// check reports what makes g unusable.
func (g Grant) check() error {
	named := 0
	for _, id := range []string{g.Host, g.User, g.Team} {
		if id != "" {
			named++
		}
	}
	switch {
	case g.ID == 0:
		return fmt.Errorf("grant has no id")
	case g.Opening && named != 1:
		return fmt.Errorf("opening balance %d names %d accounts; it names one host, user or team", g.ID, named)
	case g.Opening && (!(g.RAC.Avg >= 0 && g.RAC.Avg <= MaxGrant) || g.Results < 0):
		return fmt.Errorf("opening balance %d has a recent average of %g and %d results", g.ID, g.RAC.Avg, g.Results)
	case !g.Opening && (g.RAC.Avg != 0 || !g.RAC.Time.IsZero() || g.Results != 0):
		return fmt.Errorf("grant %d brings a recent average or results: only an opening balance does", g.ID)
	case !(g.Credit >= 0 && g.Credit <= MaxGrant):
		return fmt.Errorf("grant %d has credit %g; a grant is 0 to %g Cobblestones", g.ID, g.Credit, float64(MaxGrant))
	case g.Opening:
	case g.Host == "":
		return fmt.Errorf("grant %d names no host", g.ID)
	case g.Team != "" && g.User == "":
		return fmt.Errorf("grant %d names a team but no user", g.ID)
	}
	return nil
}

// Delivery is the payload of a record in the accounting log: consecutive
// grants of one source. A delivery with no grants asks only for a receipt.
type Delivery struct {
	V      int     `json:"v"`
	Source string  `json:"source"`
	Grants []Grant `json:"grants,omitempty"`
}

// Validate checks a delivery before anything of it is applied.
func (d *Delivery) Validate() error {
	if d.V < 1 || d.V > Version {
		return wu.Errorf(wu.CodeBadRequest, "delivery version %d: this accounting peer reads 1 to %d", d.V, Version)
	}
	if d.Source == "" {
		return wu.Errorf(wu.CodeBadRequest, "delivery names no source")
	}
	for i, g := range d.Grants {
		if err := g.check(); err != nil {
			return wu.Errorf(wu.CodeBadRequest, "%v", err)
		}
		if i > 0 && g.ID != d.Grants[i-1].ID+1 {
			return wu.Errorf(wu.CodeBadRequest, "grants %d and %d of the delivery are not consecutive", d.Grants[i-1].ID, g.ID)
		}
	}
	return nil
}

// Receipt is the reply to a delivery: how far the source's grants are
// applied, after this delivery.
type Receipt struct {
	V       int       `json:"v"`
	Error   *wu.Error `json:"error,omitempty"`
	Source  string    `json:"source,omitempty"`
	Through uint64    `json:"through"`              // every grant of the source up to this id is applied
	Applied int       `json:"applied,omitempty"`    // grants of this delivery applied now
	Dups    int       `json:"duplicates,omitempty"` // grants of this delivery applied before
}

// Account is what one host, user or team has been granted.
type Account struct {
	Credit  float64        `json:"credit"`
	RAC     credit.Average `json:"rac,omitzero"`
	Results int            `json:"results"` // validated results credited
	// Days and Months hold the credit granted by day and by month, oldest
	// first, the last HistoryDays days and HistoryMonths months on which
	// there was any (history.go).
	Days   []Bucket `json:"days,omitempty"`
	Months []Bucket `json:"months,omitempty"`
}

func (a *Account) add(g Grant) {
	a.Credit += g.Credit
	if !g.Opening {
		a.RAC.Add(g.At, g.Sent, g.Credit)
		a.Results++
		a.Days = addBucket(a.Days, Day(g.At), g.Credit, HistoryDays)
		a.Months = addBucket(a.Months, Month(g.At), g.Credit, HistoryMonths)
		return
	}
	a.Results += g.Results
	if a.RAC.Time.IsZero() {
		a.RAC = g.RAC
		return
	}
	at := a.RAC.Time
	if g.RAC.Time.After(at) {
		at = g.RAC.Time
	}
	a.RAC = credit.Average{Avg: a.RAC.At(at) + g.RAC.At(at), Time: at}
}

// state is the whole replicated state, and the snapshot (JSON: maps are
// written in key order, so the same state writes the same bytes).
type state struct {
	V       int                 `json:"v"`
	Sources map[string]uint64   `json:"sources"` // last grant id applied, by source
	Hosts   map[string]*Account `json:"hosts"`
	Users   map[string]*Account `json:"users"`
	Teams   map[string]*Account `json:"teams"`
	// Project is the credit of all hosts together over time (version 2).
	Project Totals `json:"project,omitzero"`
	// Members holds the team each user was last credited in, by user id
	// (members.go); older snapshots have none.
	Members map[string]string `json:"members,omitempty"`
}

func newState() *state {
	return &state{V: Version, Sources: map[string]uint64{}, Hosts: map[string]*Account{}, Users: map[string]*Account{}, Teams: map[string]*Account{}, Members: map[string]string{}}
}

// Machine is the accounting state machine. It implements
// fsm.StateMachine; like the scheduler, it is not safe for concurrent
// use (the vpeer member serialises Apply and queries).
type Machine struct {
	st *state
	ix index // derived from st: standings.go
}

var _ fsm.StateMachine = (*Machine)(nil)

// New returns an empty accounting machine.
func New() *Machine {
	m := &Machine{st: newState()}
	m.reindex()
	return m
}

// MaxDeliveryBytes bounds one record of the accounting log.
const MaxDeliveryBytes = wu.MaxAdminMessageBytes

// Apply applies one Delivery and returns its Receipt, encoded. Ticks carry
// nothing for this machine: the time of a grant comes with it.
func (m *Machine) Apply(e fsm.Entry) []byte {
	if e.Tick {
		return nil
	}
	d, err := wu.DecodeLimit[Delivery](e.Payload, MaxDeliveryBytes)
	if err != nil {
		return wu.Encode(Receipt{V: Version, Error: asError(err)})
	}
	return wu.Encode(m.Receive(d))
}

func asError(err error) *wu.Error {
	if e, ok := err.(*wu.Error); ok {
		return e
	}
	return wu.Errorf(wu.CodeInternal, "%v", err)
}

// Receive applies the grants of a delivery that are new, in order, and says
// how far the source now is. Grants applied before are counted as
// duplicates and change nothing. A grant beyond the next expected id is a
// gap: it and the rest are refused, with an error naming the id to resend
// from. A delivery that fails Validate changes nothing.
func (m *Machine) Receive(d Delivery) Receipt {
	if err := d.Validate(); err != nil {
		return Receipt{V: Version, Error: asError(err), Source: d.Source, Through: m.st.Sources[d.Source]}
	}
	rc := Receipt{V: Version, Source: d.Source}
	last := m.st.Sources[d.Source]
	for _, g := range d.Grants {
		if g.ID <= last {
			rc.Dups++
			continue
		}
		if g.ID != last+1 {
			rc.Error = wu.Errorf(wu.CodeConflict, "grant %d of %s skips ids: resend from %d", g.ID, d.Source, last+1)
			break
		}
		m.credit(g)
		last = g.ID
		rc.Applied++
	}
	if last != 0 {
		m.st.Sources[d.Source] = last
	}
	rc.Through = last
	return rc
}

func (m *Machine) credit(g Grant) {
	if g.User != "" {
		m.unlist(g.User)
		defer m.list(g.User)
		if !g.Opening {
			m.join(g.User, g.Team)
		}
	}
	for k, id := range [kinds]string{Hosts: g.Host, Users: g.User, Teams: g.Team} {
		if id == "" {
			continue
		}
		t := m.table(Kind(k))
		a := t[id]
		if a == nil {
			a = &Account{}
			t[id] = a
		} else {
			m.unplace(Kind(k), id, a)
		}
		a.add(g)
		m.place(Kind(k), id, a)
	}
	if !g.Opening {
		m.st.Project.add(g.At, g.Credit)
	}
}

// Through is the id of the last grant of source applied.
func (m *Machine) Through(source string) uint64 { return m.st.Sources[source] }

// Restore replaces the state with a snapshot's; on error the state is left
// as it was.
func (m *Machine) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("accounting restore: %w", err)
	}
	st, err := decodeState(b)
	if err != nil {
		return fmt.Errorf("accounting restore: %w", err)
	}
	m.st = st
	m.reindex()
	return nil
}

// decodeState reads a snapshot, binary or JSON, and checks what it holds.
func decodeState(b []byte) (*state, error) {
	var st *state
	var err error
	if rest, ok := isBinary(b); ok {
		st, err = decodeBinary(rest)
	} else {
		st, err = decodeJSON(b)
	}
	if err != nil {
		return nil, err
	}
	return st, checkState(st)
}

// decodeJSON reads a snapshot of versions 1 and 2.
func decodeJSON(b []byte) (*state, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	st := &state{}
	if err := dec.Decode(st); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("data after the snapshot")
	}
	if st.V < 1 || st.V > Version {
		return nil, fmt.Errorf("snapshot version %d: this accounting peer reads 1 to %d", st.V, snapshotVersion)
	}
	st.V = Version
	if st.Sources == nil {
		st.Sources = map[string]uint64{}
	}
	if st.Members == nil {
		st.Members = map[string]string{}
	}
	for _, t := range []*map[string]*Account{&st.Hosts, &st.Users, &st.Teams} {
		if *t == nil {
			*t = map[string]*Account{}
		}
	}
	return st, nil
}

// checkState reports what is wrong with a restored state.
func checkState(st *state) error {
	for _, t := range []struct {
		name  string
		table map[string]*Account
	}{{"host", st.Hosts}, {"user", st.Users}, {"team", st.Teams}} {
		for id, a := range t.table {
			if a == nil || !(a.Credit >= 0) || math.IsInf(a.Credit, 0) || a.Results < 0 || !(a.RAC.Avg >= 0) || math.IsInf(a.RAC.Avg, 0) {
				return fmt.Errorf("%s %q: credit, average and results must be finite and not negative", t.name, id)
			}
			if err := errors.Join(checkHistory(a.Days), checkHistory(a.Months)); err != nil {
				return fmt.Errorf("%s %q: %w", t.name, id, err)
			}
		}
	}
	for u, t := range st.Members {
		if u == "" || t == "" {
			return fmt.Errorf("user %q is a member of team %q: both must be named", u, t)
		}
	}
	p := st.Project
	if err := errors.Join(checkHistory(p.Hours), checkHistory(p.Days), checkHistory(p.Months)); err != nil {
		return fmt.Errorf("project: %w", err)
	}
	return nil
}

// Ledger is a copy of the accounts, for displays: the machine's totals plus
// grants it has not applied yet (the scheduler's outbox), so that credit
// shows as soon as it is granted.
type Ledger struct {
	hosts, users, teams map[string]Account
}

// Ledger copies the accounts and adds the grants of source in pending that
// the machine has not applied.
func (m *Machine) Ledger(source string, pending []Grant) Ledger {
	return m.ledger(source, pending, nil)
}

// LedgerOf is Ledger for one host, user and team only (ids, "" for none):
// what a volunteer asks of its own credit, at the cost of three accounts
// rather than of every one.
func (m *Machine) LedgerOf(source string, pending []Grant, host, user, team string) Ledger {
	return m.ledger(source, pending, &[3]string{host, user, team})
}

// ledger copies the accounts, all of them or (only) the host's, user's and
// team's named.
func (m *Machine) ledger(source string, pending []Grant, only *[3]string) Ledger {
	copyOf := func(t map[string]*Account, kind int) map[string]Account {
		if only != nil {
			c := map[string]Account{}
			if id := only[kind]; id != "" {
				c[id] = Account{}
				if a := t[id]; a != nil {
					c[id] = *a
				}
			}
			return c
		}
		c := make(map[string]Account, len(t))
		for id, a := range t {
			c[id] = *a
		}
		return c
	}
	l := Ledger{hosts: copyOf(m.st.Hosts, 0), users: copyOf(m.st.Users, 1), teams: copyOf(m.st.Teams, 2)}
	through := m.st.Sources[source]
	for _, g := range pending {
		if g.ID <= through {
			continue
		}
		for _, t := range []struct {
			table map[string]Account
			id    string
		}{{l.hosts, g.Host}, {l.users, g.User}, {l.teams, g.Team}} {
			if t.id == "" {
				continue
			}
			a, ok := t.table[t.id]
			if !ok && only != nil {
				continue
			}
			a.add(g)
			t.table[t.id] = a
		}
	}
	return l
}

// Host, User and Team return an account of the ledger (zero when it has
// none).
func (l Ledger) Host(id string) Account { return l.hosts[id] }
func (l Ledger) User(id string) Account { return l.users[id] }
func (l Ledger) Team(id string) Account { return l.teams[id] }

// Fill sets the credit and recent average credit, decayed to now, of every
// host, user and team listed, by id.
func (l Ledger) Fill(now time.Time, hosts []wu.HostStatus, users []wu.UserStatus, teams []wu.TeamStatus) {
	for i := range hosts {
		a := l.hosts[hosts[i].ID]
		hosts[i].Credit, hosts[i].RAC = a.Credit, a.RAC.At(now)
	}
	for i := range users {
		a := l.users[users[i].ID]
		users[i].Credit, users[i].RAC = a.Credit, a.RAC.At(now)
	}
	for i := range teams {
		a := l.teams[teams[i].ID]
		teams[i].Credit, teams[i].RAC = a.Credit, a.RAC.At(now)
	}
}

// Totals sums the credit and results of every host: what the scheduler
// granted in all, once each.
func (m *Machine) Totals() (credit float64, results int) {
	for _, id := range slices.Sorted(maps.Keys(m.st.Hosts)) {
		credit += m.st.Hosts[id].Credit
		results += m.st.Hosts[id].Results
	}
	return credit, results
}
