package gateway

import (
	"sync"
)

// refusals counts the requests the gateway refused, by error code
// (rate_limited among them), and the floods it cut off: the operator's
// metrics (/metrics).
type refusals struct {
	mu     sync.Mutex
	byCode map[string]uint64
	floods uint64
}

func (r *refusals) add(code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byCode == nil {
		r.byCode = map[string]uint64{}
	}
	r.byCode[code]++
}

func (r *refusals) flood() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.floods++
}

// Refusals returns how many requests were refused, by error code, and how
// many floods were cut off, since the gateway started.
func (g *Gateway) Refusals() (byCode map[string]uint64, floods uint64) {
	g.refused.mu.Lock()
	defer g.refused.mu.Unlock()
	byCode = make(map[string]uint64, len(g.refused.byCode))
	for c, n := range g.refused.byCode {
		byCode[c] = n
	}
	return byCode, g.refused.floods
}
