package gateway

import (
	"testing"
	"time"
)

func TestRateLimiterWithAnInjectedClock(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewRateLimiter(10, 5, 3, func() time.Time { return now })
	for i := 0; i < 5; i++ {
		if d := l.Allow("h1"); !d.Allowed {
			t.Fatalf("request %d of a burst of 5 refused", i)
		}
	}
	d := l.Allow("h1")
	if d.Allowed || d.RetryAfter != 100*time.Millisecond || d.Flooding || d.Silent {
		t.Fatalf("sixth request: %+v, want refused, retry in 100ms", d)
	}
	if !l.Allow("h2").Allowed {
		t.Fatal("another host shares h1's bucket")
	}
	// Tokens come back at the rate.
	now = now.Add(250 * time.Millisecond)
	if !l.Allow("h1").Allowed || !l.Allow("h1").Allowed || l.Allow("h1").Allowed {
		t.Fatal("after 250ms at 10/s, want two requests allowed and the third refused")
	}
	// Refusals within a second: the third is a flood, reported once; the
	// ones after it are not answered.
	if d := l.Allow("h1"); !d.Flooding {
		t.Fatalf("third refusal within a second: %+v", d)
	}
	if d := l.Allow("h1"); d.Flooding || !d.Silent {
		t.Fatalf("fourth refusal: %+v", d)
	}
	// A host that backs off when refused is not flooding: two refusals a
	// second stay under the threshold of three, round after round.
	now = now.Add(2 * time.Second)
	for i := 0; i < 5; i++ {
		l.Allow("h3")
	}
	for i := 0; i < 4; i++ {
		now = now.Add(1100 * time.Millisecond)
		for j := 0; j < 6; j++ {
			l.Allow("h3")
		}
		if d := l.Allow("h3"); d.Allowed || d.Flooding || d.Silent {
			t.Fatalf("round %d: a client refused twice a second is flagged: %+v", i, d)
		}
	}
	// Idle buckets are forgotten.
	now = now.Add(time.Hour)
	for i := 0; i < 4096; i++ {
		l.Allow("busy")
	}
	l.mu.Lock()
	n := len(l.buckets)
	l.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d buckets kept after an hour idle", n)
	}
}
