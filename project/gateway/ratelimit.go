package gateway

import (
	"sync"
	"time"
)

// RateLimiter is a token bucket per key (a host id): NATS limits payloads,
// subscriptions and connections but not the rate of messages, so the
// gateway limits requests itself, before they cost anything but this check.
type RateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	// floodAfter refusals within a second mark a host as flooding rather
	// than merely busy: a client that backs off when refused, as the
	// volunteer client does, never comes near.
	floodAfter int
	now        func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	calls   int
}

type bucket struct {
	tokens  float64
	last    time.Time
	window  time.Time // start of the second refusals are counted in
	refused int
}

// Decision is what the limiter made of one request.
type Decision struct {
	Allowed bool
	// RetryAfter is when a refused request would be allowed.
	RetryAfter time.Duration
	// Flooding is set once, on the refusal that makes the host's
	// refusals within a second reach the flood threshold.
	Flooding bool
	// Silent is set on the refusals after that within the same second:
	// answering them would only add to the flood.
	Silent bool
}

// NewRateLimiter allows rate requests per second per key with bursts of
// burst; floodAfter refusals within a second make a key flooding. now is
// the clock (time.Now when nil).
//
// A rate, burst or flood threshold of 0 takes the default: 20 requests a
// second with a burst of 200, and a flood at 1,000 refusals within a
// second, far above what a big host starting many tasks at once is refused
// and far below a flood (hundreds of thousands a second).
func NewRateLimiter(rate float64, burst, floodAfter int, now func() time.Time) *RateLimiter {
	if rate <= 0 {
		rate = 20
	}
	if burst <= 0 {
		burst = 200
	}
	if floodAfter <= 0 {
		floodAfter = 1000
	}
	if now == nil {
		now = time.Now
	}
	return &RateLimiter{rate: rate, burst: float64(max(burst, 1)), floodAfter: max(floodAfter, 1), now: now, buckets: map[string]*bucket{}}
}

// Allow takes a token from key's bucket.
func (l *RateLimiter) Allow(key string) Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.calls++
	if l.calls%4096 == 0 {
		l.forgetIdle(now)
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if now.After(b.last) {
		b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return Decision{Allowed: true}
	}
	if now.Sub(b.window) >= time.Second {
		b.window, b.refused = now, 0
	}
	b.refused++
	return Decision{
		RetryAfter: time.Duration((1 - b.tokens) / l.rate * float64(time.Second)),
		Flooding:   b.refused == l.floodAfter,
		Silent:     b.refused > l.floodAfter,
	}
}

// forgetIdle drops buckets that have filled up again: they hold nothing a
// new bucket would not.
func (l *RateLimiter) forgetIdle(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
