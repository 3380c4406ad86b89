// Package reliability answers how long a virtual peer (DESIGN §5) survives
// while its members come and go: the probability R(t) that a group of n
// members still works after a time t, and its mean time to failure. It
// computes both from a continuous-time Markov chain and, as an independent
// check, estimates them with a Monte-Carlo simulation of the same process.
// It also sizes a group: the smallest n that survives a horizon with a
// target probability (SmallestGroup). A Report gathers all three for
// several group sizes, as `momonga-project vpeer reliability` prints them.
//
// # The model
//
// A group is configured with n members. Each live member departs
// independently after an exponentially distributed lifetime with rate
// λ = ln 2 / half-life: of any set of members, half have departed after one
// half-life. Each departure starts one replacement, which arrives after an
// exponentially distributed time with mean τ. Replacements proceed in
// parallel, one per missing member, independently of each other: with k
// members live, the n−k replacements under way complete at rate (n−k)/τ.
// (A single replacement at a time, rate 1/τ whatever the number missing, is
// the other common choice; it gives R(24 h) = 0.886 instead of 0.940 for
// five members with the parameters below, and does not reproduce the
// musasabi figures this model is checked against.)
//
// The group needs a majority, q = ⌊n/2⌋+1 live members, to order entries.
// The moment fewer than q are live it has failed, and failure is final:
// replacements that arrive later do not revive it. The states are the live
// counts k = n, n−1, …, q and one absorbing failed state; from k
//
//	k → k−1    at rate kλ       (a member departs; from k = q the group fails)
//	k → k+1    at rate (n−k)/τ  (a replacement arrives; never from k = n)
//
// The group starts with all n live. R(t) is the probability that the chain
// has not reached the failed state by t (Model.Survival), and the mean time
// to failure is the expected time to reach it (Model.MTTFHours).
//
// With λ = ln 2 / 1 h and τ = 60 s, R(24 h) is 2⁻²⁴ ≈ 6·10⁻⁸ for one member
// and 0.336, 0.940, 0.9967 and 0.99983 for 3, 5, 7 and 9; the mean times to
// failure of 3, 5 and 7 members are 22 h, 388 h and 7,358 h. Seven members
// are the smallest group with R(24 h) ≥ 0.99: the musasabi figure of "about
// seven members when half the peers leave within an hour and replacement
// takes 60 s". With τ = 300 s, seven members survive a day with probability
// 0.758 only.
//
// Model.Need replaces the majority by another count of live members: Need 1
// asks how likely a group is ever to have no live member at all, which is
// what stops a group whose log is ordered outside its members (see below).
//
// Consequences of the failure rule: one member fails at its first
// departure, whatever τ; two members fail at the first of their two
// departures; an even n tolerates no more departures than n−1 and has more
// members that can depart, so it is never more reliable than n−1.
//
// Assumptions beyond those above: departures are independent of each other
// and of the group's state, so correlated losses (a site or a network going
// away with several members) are outside the model; τ includes everything
// from the departure to the replacement serving; the configured size n
// never changes; the group never loses two members at the same instant.
//
// # How it maps to a running virtual peer
//
// A member is one process applying the virtual peer's log (a vpeer.Member);
// in cluster mode it also runs one of the JetStream servers that replicate
// the log, so the group's Raft majority and its members come and go
// together. A departure is whatever makes a member's heartbeat in the
// membership bucket lapse: the process killed or crashing, its host
// switched off or taken back by its owner, its network gone. A replacement
// is a spare (or newly started) process taking the departed member's place:
// τ is the mean time from the departure until it serves, which is the time
// for the heartbeat to lapse, plus starting the process, restoring the
// newest snapshot from the object store and replaying the log from the
// snapshot's sequence. The half-life is a property of the machines the
// members run on; τ is what the implementation controls, which is why
// snapshots and replay must be fast. The model counts the first loss of a
// majority as the end of the group, as the musasabi analysis did, without
// asking whether the group could be restarted from what survives.
//
// # Methods
//
// Survival computes exp(Qt) for the generator Q restricted to the live
// states: uniformization over a step short enough that it needs about twenty
// terms, then repeated squaring. Both only add and multiply non-negative
// numbers, so values as small as 10⁻⁸ keep their leading digits. MTTFHours
// solves the equations for the expected absorption times, which for this
// birth-death chain reduce to a recurrence of positive terms.
//
// SimulateSurvival and SimulateMTTF do not use the chain: they give every
// member slot its own clock (the member's departure time, or its
// replacement's arrival time) and step from event to event, so their
// agreement with the chain also checks the reduction of n independent
// members to the chain's rates. They take a *rand.Rand, so a seed
// reproduces a run exactly.
//
// Times inside the package are in hours; durations come in as time.Duration.
package reliability

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// MaxMembers is the largest group the package models; larger groups are
// refused rather than left to run for minutes.
const MaxMembers = 255

// ErrInvalid is wrapped by the errors for parameters the model cannot use.
var ErrInvalid = errors.New("invalid reliability parameters")

// Model is a virtual peer whose members depart and are replaced.
type Model struct {
	Members  int           // configured group size n
	HalfLife time.Duration // time by which half of the members have departed
	Replace  time.Duration // mean time from a departure until its replacement serves
	// Need is how many live members the group needs; 0 means a majority
	// (Quorum). A group that orders entries among its members needs a
	// majority; a group whose log is ordered elsewhere (a JetStream stream)
	// serves while any member is live, and Need 1 gives the probability
	// that it ever has none.
	Need int
}

// need is the number of live members the group needs.
func (m Model) need() int {
	if m.Need > 0 {
		return m.Need
	}
	return Quorum(m.Members)
}

// Quorum is the number of live members a group of n needs: a majority.
func Quorum(n int) int { return n/2 + 1 }

// Validate reports whether the model can be computed, with an error that
// names the parameter to fix.
func (m Model) Validate() error {
	if m.Members < 1 || m.Members > MaxMembers {
		return fmt.Errorf("%w: members must be between 1 and %d, got %d", ErrInvalid, MaxMembers, m.Members)
	}
	if m.Need < 0 || m.Need > m.Members {
		return fmt.Errorf("%w: the live members needed must be between 1 and the %d members (0: a majority), got %d", ErrInvalid, m.Members, m.Need)
	}
	if m.HalfLife <= 0 {
		return fmt.Errorf("%w: half-life must be positive, got %s", ErrInvalid, m.HalfLife)
	}
	if m.Replace <= 0 {
		return fmt.Errorf("%w: replacement time must be positive, got %s", ErrInvalid, m.Replace)
	}
	return nil
}

// DepartureRate is λ, the rate at which one live member departs, per hour.
func (m Model) DepartureRate() float64 { return math.Ln2 / m.HalfLife.Hours() }

// replaceRate is the rate at which one replacement arrives, per hour.
func (m Model) replaceRate() float64 { return 1 / m.Replace.Hours() }

func checkHorizon(t time.Duration) error {
	if t < 0 {
		return fmt.Errorf("%w: horizon must not be negative, got %s", ErrInvalid, t)
	}
	return nil
}
