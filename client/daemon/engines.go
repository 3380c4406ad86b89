package daemon

import (
	"sync"

	"github.com/momonga-project/momonga/client/runner"
	wu "github.com/momonga-project/momonga/workunits"
)

// engineChoice learns, for each app, which of the worker's engines runs it
// with the least CPU time for its work, as BOINC learns the speed of each
// app version on a host: the default engine is not the faster one for every
// module (Go's wasm output gains nothing from wasmtime's compiler and ran
// 1.5 % slower on it in bench engines, while C modules run twice as fast).
//
// An app's first task runs on the worker's default engine and its second on
// the other one; after that each task runs on the engine with the lower cost
// (an average of CPU seconds per estimated operation, or per task when the
// work unit gives no estimate), except every probeEvery-th, which tries the
// other one again so that a change is noticed. Only whole runs count: a task
// resumed from a checkpoint, stopped or failed says nothing of the engine.
type engineChoice struct {
	engines []string // the two engines chosen between, default first; none: no choice

	mu   sync.Mutex
	apps map[wu.Hash]*appEngines
}

// appEngines is what is known of one app's runs on this host.
type appEngines struct {
	cost  map[string]float64
	tasks int // tasks started
}

// probeEvery is how often a task of a learned app runs on the engine that
// was slower.
const probeEvery = 20

// costWeight is the weight of the newest run in an engine's cost.
const costWeight = 0.3

// newEngineChoice chooses between the first two compiling engines of a
// worker's (default first); with fewer, it leaves every task to the
// worker's default.
func newEngineChoice(workerEngines []string) *engineChoice {
	c := &engineChoice{apps: map[wu.Hash]*appEngines{}}
	for _, e := range workerEngines {
		if e != runner.EngineWazeroInterpreter && len(c.engines) < 2 {
			c.engines = append(c.engines, e)
		}
	}
	if len(c.engines) < 2 {
		c.engines = nil
	}
	return c
}

// pick returns the engine for the next task of app: "" for the worker's
// default (which may fall back to wazero if its faster engine cannot run
// the module).
func (c *engineChoice) pick(app wu.Hash) string {
	if c == nil || c.engines == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.apps[app]
	if a == nil {
		a = &appEngines{cost: map[string]float64{}}
		c.apps[app] = a
	}
	a.tasks++
	def, other := c.engines[0], c.engines[1]
	_, haveDef := a.cost[def]
	_, haveOther := a.cost[other]
	switch {
	case !haveDef:
		return ""
	case !haveOther:
		return other
	}
	best, worse := def, other
	if a.cost[other] < a.cost[def] {
		best, worse = other, def
	}
	if a.tasks%probeEvery == 0 {
		best = worse
	}
	if best == def {
		return ""
	}
	return best
}

// record learns from a run of app's task of fpops estimated operations
// (0: unknown) that ended as res; it reports the engine now best for app
// and whether that changed.
func (c *engineChoice) record(app wu.Hash, fpops float64, res runner.Result) (best string, changed bool) {
	if c == nil || c.engines == nil || res.Failed || res.Stopped || res.Resumed != nil || res.CPUSeconds <= 0 {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.apps[app]
	if a == nil || (res.Engine != c.engines[0] && res.Engine != c.engines[1]) {
		return "", false
	}
	before := a.best(c.engines)
	cost := res.CPUSeconds
	if fpops > 0 {
		cost /= fpops
	}
	if old, ok := a.cost[res.Engine]; ok {
		cost = old + costWeight*(cost-old)
	}
	a.cost[res.Engine] = cost
	after := a.best(c.engines)
	return after, after != before && after != ""
}

// best is the engine with the lower cost once both have one, else "".
func (a *appEngines) best(engines []string) string {
	d, okD := a.cost[engines[0]]
	o, okO := a.cost[engines[1]]
	switch {
	case !okD || !okO:
		return ""
	case o < d:
		return engines[1]
	}
	return engines[0]
}
