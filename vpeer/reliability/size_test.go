package reliability

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestSmallestGroup(t *testing.T) {
	for _, c := range []struct {
		replace time.Duration
		target  float64
		want    int
	}{
		{time.Minute, 0.99, 7}, // the musasabi figure
		{time.Minute, 0.9, 5},
		{time.Minute, 0.999, 9},
		{time.Minute, 1e-9, 1},
		{5 * time.Minute, 0.99, 13},
	} {
		n, r, err := SmallestGroup(time.Hour, c.replace, day, c.target, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n != c.want || r < c.target {
			t.Errorf("replace=%s target=%g: %d members with R(24h) = %g, want %d", c.replace, c.target, n, r, c.want)
		}
		if n > 1 {
			smaller, _ := model(n-1, c.replace).Survival(day)
			if smaller >= c.target {
				t.Errorf("replace=%s target=%g: %d members already reach it (%g)", c.replace, c.target, n-1, smaller)
			}
		}
	}
}

func TestSmallestGroupUnreachable(t *testing.T) {
	// Replacing a member takes longer than members stay: fewer than half are
	// live on average, and larger groups only do worse.
	_, _, err := SmallestGroup(time.Hour, 10*time.Hour, day, 0.5, 25)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "no group of up to 25 members") {
		t.Errorf("error %v, want ErrUnreachable naming the limit", err)
	}
}

func TestSmallestGroupInvalid(t *testing.T) {
	for _, c := range []struct {
		halfLife, replace, horizon time.Duration
		target                     float64
		max                        int
		want                       string
	}{
		{time.Hour, time.Minute, day, 0, 0, "target must be a probability strictly between 0 and 1, got 0"},
		{time.Hour, time.Minute, day, 1, 0, "got 1"},
		{time.Hour, time.Minute, day, 99, 0, "got 99"},
		{time.Hour, time.Minute, day, math.NaN(), 0, "got NaN"},
		{time.Hour, time.Minute, day, 0.99, -1, "largest group to try must be between 1 and"},
		{time.Hour, time.Minute, day, 0.99, MaxMembers + 1, "largest group to try must be between 1 and"},
		{0, time.Minute, day, 0.99, 0, "half-life must be positive"},
		{time.Hour, -time.Minute, day, 0.99, 0, "replacement time must be positive"},
		{time.Hour, time.Minute, -day, 0.99, 0, "horizon must not be negative"},
	} {
		_, _, err := SmallestGroup(c.halfLife, c.replace, c.horizon, c.target, c.max)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one containing %q", c, err, c.want)
		}
	}
}
