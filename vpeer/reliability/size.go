package reliability

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnreachable is wrapped by SmallestGroup's error when no group size up to
// its limit reaches the target.
var ErrUnreachable = errors.New("no group size reaches the target")

// SmallestGroup returns the smallest member count n ≤ maxMembers (0 means
// MaxMembers) for which a group with the given departure half-life and mean
// replacement time survives the horizon t with probability at least target,
// and that probability. With a half-life of 1 h, replacement in 60 s, a
// horizon of 24 h and a target of 0.99 it returns 7, the musasabi figure.
//
// Every n is tried in turn, even ones too, though an even n is never more
// reliable than n−1: the n−1 slots of the smaller group, run on the same
// clocks, never have more missing members than the larger group, and both
// fail at n/2 missing. So the answer is always odd.
func SmallestGroup(halfLife, replace, t time.Duration, target float64, maxMembers int) (members int, r float64, err error) {
	if maxMembers == 0 {
		maxMembers = MaxMembers
	}
	if maxMembers < 1 || maxMembers > MaxMembers {
		return 0, 0, fmt.Errorf("%w: the largest group to try must be between 1 and %d members, got %d", ErrInvalid, MaxMembers, maxMembers)
	}
	if err := (Model{Members: 1, HalfLife: halfLife, Replace: replace}).Validate(); err != nil {
		return 0, 0, err
	}
	if err := checkHorizon(t); err != nil {
		return 0, 0, err
	}
	if !(target > 0 && target < 1) {
		return 0, 0, fmt.Errorf("%w: target must be a probability strictly between 0 and 1, got %g", ErrInvalid, target)
	}
	best := 0.0
	for n := 1; n <= maxMembers; n++ {
		r, err := Model{Members: n, HalfLife: halfLife, Replace: replace}.Survival(t)
		if err != nil {
			return 0, 0, err
		}
		if r >= target {
			return n, r, nil
		}
		best = max(best, r)
	}
	return 0, 0, fmt.Errorf("%w: with half-life %s and replacement %s, no group of up to %d members survives %s with probability %g (best %.6g); replace members faster",
		ErrUnreachable, halfLife, replace, maxMembers, t, target, best)
}
