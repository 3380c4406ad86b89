// Package idle decides when the volunteer's machine may compute (DESIGN
// §7): it watches for the person (time since the last keyboard or mouse
// input), for other programs (the CPU they use) and for the power source,
// and applies the preferences to what it sees.
//
// The sources are small interfaces with a platform implementation each
// (input_linux.go, sources_windows.go, sources_darwin.go) and fakes in the
// tests; Governor is pure: an Observation and the preferences in, a Decision
// out, with time taken from the Observation.
package idle

import (
	"fmt"
	"time"

	"github.com/momonga-project/momonga/client/prefs"
)

// Observation is what the sources saw at one moment.
type Observation struct {
	Now       time.Time `json:"now"`
	LastInput time.Time `json:"last_input,omitzero"` // zero when no source can tell: a machine nobody uses
	OtherCPU  float64   `json:"other_cpu"`           // share of the whole machine other programs used lately, 0..1
	OnBattery bool      `json:"on_battery"`
}

// InputIdle is the time since the last user input, or a very long time when
// it is not known.
func (o Observation) InputIdle() time.Duration {
	if o.LastInput.IsZero() {
		return 1<<63 - 1
	}
	return max(o.Now.Sub(o.LastInput), 0)
}

// InputSource tells when the person last used the machine; ok is false when
// it cannot tell.
type InputSource interface {
	LastInput(now time.Time) (t time.Time, ok bool)
}

// CPUSource tells the share of the whole machine (0..1) that processes other
// than ours used since it was last asked; ok is false until it can tell.
type CPUSource interface {
	OtherCPU(now time.Time, ours []int) (share float64, ok bool)
}

// PowerSource tells whether the machine runs from its battery.
type PowerSource interface {
	OnBattery(now time.Time) bool
}

// Monitor combines sources into Observations: the latest input any of them
// saw, the other programs' CPU, the power source.
type Monitor struct {
	Inputs []InputSource
	CPU    CPUSource   // nil: never busy
	Power  PowerSource // nil: always on mains
	Closer func()      // releases the sources; may be nil

	lastCPU float64
}

// Observe looks at every source. ours are the process ids of the client and
// its workers, whose CPU use is not "other".
func (m *Monitor) Observe(now time.Time, ours []int) Observation {
	o := Observation{Now: now}
	for _, in := range m.Inputs {
		if t, ok := in.LastInput(now); ok && t.After(o.LastInput) {
			o.LastInput = t
		}
	}
	if m.CPU != nil {
		if share, ok := m.CPU.OtherCPU(now, ours); ok {
			m.lastCPU = share
		}
		o.OtherCPU = m.lastCPU
	}
	if m.Power != nil {
		o.OnBattery = m.Power.OnBattery(now)
	}
	return o
}

// Close releases the sources.
func (m *Monitor) Close() {
	if m.Closer != nil {
		m.Closer()
	}
}

// Decision is whether tasks may run now, and if not, why.
type Decision struct {
	Run        bool   `json:"run"`
	Reason     string `json:"reason,omitempty"` // why not, for a person
	UserActive bool   `json:"user_active"`      // the person used the machine within the idle time
}

// CPUCalm is how long other programs' CPU use must stay under the threshold
// before tasks suspended for it resume, so that a program that works in
// bursts does not flip them on and off.
const CPUCalm = 10 * time.Second

// Governor applies preferences to observations. Its only memory is the
// suspension for other programs' CPU use, which ends after CPUCalm.
type Governor struct {
	cpuBusy   bool
	calmSince time.Time
}

// Decide says whether tasks may run, given the preferences and what the
// sources saw.
func (g *Governor) Decide(p prefs.Prefs, o Observation) Decision {
	d := Decision{Run: true}
	idleFor := time.Duration(p.IdleMinutes * float64(time.Minute))
	d.UserActive = o.InputIdle() < idleFor
	cpuBusy := g.updateCPU(p, o)
	switch {
	case o.OnBattery && !p.RunOnBattery:
		d.Run, d.Reason = false, "on battery"
	case !p.Hours().Contains(o.Now):
		d.Run, d.Reason = false, "outside the hours set in run_hours ("+p.RunHours+")"
	case d.UserActive && !p.RunIfUserActive:
		d.Run, d.Reason = false, fmt.Sprintf("computer in use (waiting for %s without input)", idleFor.Round(time.Second))
	case cpuBusy:
		d.Run, d.Reason = false, fmt.Sprintf("other programs use %.0f%% of the CPU (over %g%%)", 100*o.OtherCPU, p.SuspendCPUPercent)
	}
	return d
}

func (g *Governor) updateCPU(p prefs.Prefs, o Observation) bool {
	if p.SuspendCPUPercent <= 0 {
		g.cpuBusy = false
		return false
	}
	over := 100*o.OtherCPU > p.SuspendCPUPercent
	switch {
	case over:
		g.cpuBusy = true
		g.calmSince = time.Time{}
	case g.cpuBusy && g.calmSince.IsZero():
		g.calmSince = o.Now
	case g.cpuBusy && o.Now.Sub(g.calmSince) >= CPUCalm:
		g.cpuBusy = false
	}
	return g.cpuBusy
}

// Unwatched is a monitor with no sources: a machine nobody uses, with no
// other programs, on mains. The demo's volunteers use it.
func Unwatched() *Monitor { return &Monitor{} }
