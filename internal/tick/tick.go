// Package tick is the loop of a duty that runs on a period and when
// prompted: the lease holder's checkpoint collection and credit forwarding,
// the validator's comparisons, the check for a new lease term.
package tick

import (
	"context"
	"time"
)

// Every calls fn every interval, and at once whenever wake delivers, until
// ctx ends. The first call comes after the first tick or prompt: a duty
// that must run at the start calls fn itself first. A nil wake never
// prompts.
func Every(ctx context.Context, interval time.Duration, wake <-chan struct{}, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		fn()
	}
}
