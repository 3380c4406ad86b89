package sched

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"

	"github.com/momonga-project/momonga/project/credit"
	wu "github.com/momonga-project/momonga/workunits"
)

// Validation (DESIGN §3): a work unit is valid when Quorum of its results
// agree, on the hash of their output or, for an app with a tolerance, by the
// validator's verdict; disagreement issues more replicas up to MaxTasks.
// Adaptive replication gives single replicas to hosts with a record of valid
// results, spot-checked at random; randomness comes from the log (the entry's
// sequence number), so every member draws the same.

// validate looks for a quorum of agreeing results and otherwise makes sure
// enough replicas are out to reach one.
func (m *Machine) validate(u *unit) {
	outs := m.outputs(u)
	live := m.live(u)
	best, bestN := wu.Hash(""), 0
	for _, o := range outs {
		n := 0
		for _, p := range outs {
			if agree, _ := u.agrees(o.hash, p.hash); agree {
				n += p.count
			}
		}
		if n > bestN {
			best, bestN = o.hash, n
		}
	}
	if bestN >= u.Quorum {
		m.accept(u, best)
		return
	}
	if m.awaitVerdicts(u, outs) {
		return
	}
	need := u.Quorum - bestN - live
	for ; need > 0 && len(u.Tasks) < u.MaxTasks; need-- {
		m.addTask(u, true)
		live++
	}
	if bestN+live < u.Quorum {
		m.finish(u, wu.WorkUnitError, fmt.Sprintf("no quorum of %d agreeing results after %d tasks", u.Quorum, len(u.Tasks)))
	}
}

// output is one distinct successful output of a unit and how many results
// gave it.
type output struct {
	hash  wu.Hash
	count int
}

// outputs lists u's distinct successful outputs by hash, in hash order.
func (m *Machine) outputs(u *unit) []output {
	counts := map[wu.Hash]int{}
	for _, tid := range u.Tasks {
		if t := m.st.Tasks[tid]; t.State == wu.TaskReported && t.Outcome == wu.OutcomeSuccess {
			counts[t.Output]++
		}
	}
	outs := make([]output, 0, len(counts))
	for h, n := range counts {
		outs = append(outs, output{h, n})
	}
	sort.Slice(outs, func(i, j int) bool { return outs[i].hash < outs[j].hash })
	return outs
}

// agrees reports whether outputs a and b agree, and whether that is known:
// equal hashes always agree; distinct ones agree only by a verdict of the
// validator, which an app without a tolerance never needs.
func (u *unit) agrees(a, b wu.Hash) (agree, known bool) {
	if a == b {
		return true, true
	}
	if !u.Tolerance.Fuzzy() {
		return false, true
	}
	agree, known = u.Agree[pairKey(a, b)]
	return agree, known
}

func pairKey(a, b wu.Hash) string {
	if b < a {
		a, b = b, a
	}
	return string(a) + "|" + string(b)
}

// awaitVerdicts puts u on the validator's list when some pair of its
// outputs has not been compared, and reports whether it did.
func (m *Machine) awaitVerdicts(u *unit, outs []output) bool {
	for i := range outs {
		for j := i + 1; j < len(outs); j++ {
			if _, known := u.agrees(outs[i].hash, outs[j].hash); !known {
				m.awaitCompare(u)
				return true
			}
		}
	}
	delete(m.st.Compare, u.ID)
	return false
}

func (m *Machine) accept(u *unit, canonical wu.Hash) {
	u.Canonical = canonical
	var valid []*task
	for _, tid := range u.Tasks {
		t := m.st.Tasks[tid]
		if t.State != wu.TaskReported || t.Outcome != wu.OutcomeSuccess {
			continue
		}
		switch agree, known := u.agrees(canonical, t.Output); {
		case agree:
			valid = append(valid, t)
			if t.Output == canonical {
				u.OutputSize = t.OutputSize
			}
		case known:
			m.invalidate(t)
		default:
			m.awaitCompare(u) // judged when the verdict comes
		}
	}
	// A result counts towards its host's record only when another host's
	// result agreed with it: a single replica proves nothing.
	verified := len(valid) >= 2
	claims := make([]float64, len(valid))
	for i, t := range valid {
		claims[i] = t.Claim
	}
	g := credit.Grant(claims, m.creditCap(u))
	for _, t := range valid {
		m.validated(t, g, verified)
	}
	m.finish(u, wu.WorkUnitValid, "")
}

// judgeLate validates a result that arrived after its work unit was decided,
// or whose comparison with the canonical result was still to come.
func (m *Machine) judgeLate(u *unit, t *task) {
	if u.State != wu.WorkUnitValid {
		m.invalidate(t)
		return
	}
	switch agree, known := u.agrees(u.Canonical, t.Output); {
	case agree:
		m.validated(t, credit.Grant([]float64{t.Claim}, m.creditCap(u)), true)
	case known:
		m.invalidate(t)
	default:
		m.awaitCompare(u)
	}
}

// awaitCompare puts u on the validator's list.
func (m *Machine) awaitCompare(u *unit) {
	m.st.Compare[u.ID] = true
	m.emit(CompareNeeded{u.ID})
}

// validated marks t valid and grants the credit g to its host, the host's
// user and the user's team: the grant goes to the outbox, for the
// accounting virtual peer to count (outputs.go).
func (m *Machine) validated(t *task, g float64, verified bool) {
	t.Validity = wu.ValidityValid
	t.Credit = g
	h := m.st.Hosts[t.Host]
	h.Valid++
	if verified {
		h.Streak++
	}
	m.rank(h)
	m.grant(t, h, g)
}

// invalidate marks t invalid: its host loses its record of valid results.
func (m *Machine) invalidate(t *task) {
	t.Validity = wu.ValidityInvalid
	if h := m.st.Hosts[t.Host]; h != nil {
		h.Invalid++
		h.Streak = 0
		m.rank(h)
	}
}

// claim is the credit a host claims for cpuSeconds: at its benchmark, which
// is capped so that a made-up benchmark cannot claim without bound.
func (m *Machine) claim(h *host, cpuSeconds float64) float64 {
	flops := h.Info.FLOPS
	if flops <= 0 {
		flops = m.cfg.HostFLOPS
	}
	return credit.Claim(cpuSeconds, min(flops, m.cfg.MaxFLOPS))
}

// creditCap is the most one result of u earns: its estimated size, or
// without one, its time limit at the fastest speed a host may claim.
func (m *Machine) creditCap(u *unit) float64 {
	if u.FPOps > 0 {
		return credit.Cap(u.FPOps)
	}
	return credit.Cap(u.Limits.MaxSeconds * m.cfg.MaxFLOPS)
}

// decideReplication runs when task t of u goes to host h. For a unit under
// adaptive replication whose only replica this is, it decides whether the
// unit stays a single replica (h is trusted and not spot-checked this time)
// or gets its full quorum and the other replicas now.
func (m *Machine) decideReplication(u *unit, t *task, h *host) {
	if !u.Adaptive {
		return
	}
	for _, tid := range u.Tasks {
		o := m.st.Tasks[tid]
		if tid != t.ID && (o.State == wu.TaskUnsent || o.State == wu.TaskAssigned || o.State == wu.TaskReported && o.Outcome == wu.OutcomeSuccess) {
			return
		}
	}
	if !m.spotCheck(u, h) {
		u.Quorum = 1
		return
	}
	u.Adaptive = false
	u.Quorum = u.FullQuorum
	for live := m.live(u); live < u.Replication && len(u.Tasks) < u.MaxTasks; live++ {
		m.addTask(u, true)
	}
}

// live counts u's replicas that are out or waiting to go.
func (m *Machine) live(u *unit) int {
	n := 0
	for _, tid := range u.Tasks {
		if t := m.st.Tasks[tid]; t.State == wu.TaskUnsent || t.State == wu.TaskAssigned {
			n++
		}
	}
	return n
}

// spotCheck decides whether h's replica of u must be checked by others. A
// host with fewer than TrustAfter consecutive agreeing results always is;
// after that, with a probability that falls as its record grows, never
// below SpotCheck, so a host that starts to cheat once trusted is caught
// within a few units.
func (m *Machine) spotCheck(u *unit, h *host) bool {
	if int(h.Streak) < m.cfg.TrustAfter {
		return true
	}
	p := max(float64(m.cfg.TrustAfter)/float64(h.Streak), m.cfg.SpotCheck)
	return draw(u.ID, strconv.FormatUint(m.seq, 10)) < p
}

// draw is a number in [0, 1) that depends on its arguments only: chance
// that every member of the virtual peer draws alike.
func draw(parts ...string) float64 {
	d := sha256.New()
	for _, p := range parts {
		d.Write([]byte(p))
		d.Write([]byte{0})
	}
	return float64(binary.BigEndian.Uint64(d.Sum(nil))>>11) / (1 << 53)
}

// compare applies the validator's verdict on two outputs of a unit.
func (m *Machine) compare(_ string, req wu.Compare) (*wu.Ack, error) {
	u := m.st.Units[req.Unit]
	if u == nil {
		return nil, wu.Errorf(wu.CodeNotFound, "no work unit %q", req.Unit)
	}
	if !u.Tolerance.Fuzzy() {
		return nil, wu.Errorf(wu.CodeConflict, "work unit %s compares outputs by hash", u.ID)
	}
	k := pairKey(req.A, req.B)
	if _, known := u.Agree[k]; known {
		return &wu.Ack{V: wu.WireVersion}, nil
	}
	if u.Agree == nil {
		u.Agree = map[string]bool{}
	}
	u.Agree[k] = req.Agree
	switch u.State {
	case wu.WorkUnitPending:
		m.validate(u)
	case wu.WorkUnitValid:
		delete(m.st.Compare, u.ID)
		for _, tid := range u.Tasks {
			if t := m.st.Tasks[tid]; t.State == wu.TaskReported && t.Outcome == wu.OutcomeSuccess && t.Validity == wu.ValidityUnknown {
				m.judgeLate(u, t)
			}
		}
	}
	return &wu.Ack{V: wu.WireVersion}, nil
}

// Comparison is a pair of outputs the validator is asked to compare.
type Comparison struct {
	Unit      string
	A, B      wu.Hash
	Tolerance wu.Tolerance
}

// PendingComparisons lists up to limit pairs of outputs that work units
// wait on, in a stable order.
func (m *Machine) PendingComparisons(limit int) []Comparison {
	var out []Comparison
	for _, id := range sortedKeys(m.st.Compare) {
		u := m.st.Units[id]
		var pairs [][2]wu.Hash
		switch u.State {
		case wu.WorkUnitPending:
			outs := m.outputs(u)
			for i := range outs {
				for j := i + 1; j < len(outs); j++ {
					pairs = append(pairs, [2]wu.Hash{outs[i].hash, outs[j].hash})
				}
			}
		case wu.WorkUnitValid:
			for _, tid := range u.Tasks {
				if t := m.st.Tasks[tid]; t.State == wu.TaskReported && t.Outcome == wu.OutcomeSuccess && t.Validity == wu.ValidityUnknown {
					pairs = append(pairs, [2]wu.Hash{u.Canonical, t.Output})
				}
			}
		}
		for _, p := range pairs {
			if _, known := u.agrees(p[0], p[1]); known {
				continue
			}
			out = append(out, Comparison{Unit: u.ID, A: p[0], B: p[1], Tolerance: u.Tolerance})
			if len(out) >= limit {
				return out
			}
		}
	}
	return out
}
