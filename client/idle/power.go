package idle

import (
	"sync"
	"time"
)

// cachedPower reads the power source at most every `every`: it changes when
// a cable is pulled, and some platforms read it through a process.
type cachedPower struct {
	read  func() bool
	every time.Duration

	mu sync.Mutex
	at time.Time
	on bool
}

func (c *cachedPower) OnBattery(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || now.Sub(c.at) >= c.every || now.Before(c.at) {
		c.at, c.on = now, c.read()
	}
	return c.on
}
