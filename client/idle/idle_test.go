package idle

import (
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/client/prefs"
)

// fakeInput, fakeCPU and fakePower are sources the test sets by hand.
type fakeInput struct {
	last time.Time
	ok   bool
}

func (f *fakeInput) LastInput(time.Time) (time.Time, bool) { return f.last, f.ok }

type fakeCPU struct{ share float64 }

func (f *fakeCPU) OtherCPU(time.Time, []int) (float64, bool) { return f.share, true }

type fakePower struct{ on bool }

func (f *fakePower) OnBattery(time.Time) bool { return f.on }

// world is a machine under test: fake sources, a clock and a governor.
type world struct {
	t     *testing.T
	now   time.Time
	input *fakeInput
	tty   *fakeInput
	cpu   *fakeCPU
	power *fakePower
	mon   *Monitor
	gov   Governor
	prefs prefs.Prefs
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.Local), input: &fakeInput{}, tty: &fakeInput{},
		cpu: &fakeCPU{}, power: &fakePower{}, prefs: prefs.Defaults()}
	w.mon = &Monitor{Inputs: []InputSource{w.input, w.tty}, CPU: w.cpu, Power: w.power}
	return w
}

func (w *world) advance(d time.Duration) { w.now = w.now.Add(d) }

func (w *world) touch() { w.input.last, w.input.ok = w.now, true }

func (w *world) decide() Decision { return w.gov.Decide(w.prefs, w.mon.Observe(w.now, nil)) }

func (w *world) want(run bool, reason string) {
	w.t.Helper()
	d := w.decide()
	if d.Run != run || !strings.Contains(d.Reason, reason) {
		w.t.Fatalf("at %s: %+v; want run=%v, reason containing %q", w.now.Format("15:04:05"), d, run, reason)
	}
}

func TestNoInputSourceMeansIdle(t *testing.T) {
	w := newWorld(t)
	w.want(true, "")
}

func TestSuspendOnInputResumeOnlyAfterIdleTime(t *testing.T) {
	w := newWorld(t)
	w.touch()
	w.advance(3*time.Minute + time.Second)
	w.want(true, "")
	w.touch() // the person is back
	w.want(false, "computer in use")
	if !w.decide().UserActive {
		t.Error("not user active right after input")
	}
	w.advance(2*time.Minute + 59*time.Second)
	w.want(false, "computer in use")
	w.advance(time.Second)
	w.want(true, "")

	// Any one source seeing input is enough.
	w.tty.last, w.tty.ok = w.now, true
	w.want(false, "computer in use")

	w.prefs.RunIfUserActive = true
	w.want(true, "")
	if !w.decide().UserActive {
		t.Error("running while in use, but not reported as in use")
	}
}

func TestSuspendAboveCPUThreshold(t *testing.T) {
	w := newWorld(t)
	w.cpu.share = 0.20
	w.want(true, "")
	w.cpu.share = 0.30
	w.want(false, "other programs use 30% of the CPU")
	// Back under the threshold, tasks wait for CPUCalm before resuming.
	w.cpu.share = 0.10
	w.advance(time.Second)
	w.want(false, "other programs")
	w.advance(CPUCalm - 2*time.Second)
	w.want(false, "other programs")
	w.advance(2 * time.Second)
	w.want(true, "")
	// A threshold of 0 never suspends.
	w.prefs.SuspendCPUPercent = 0
	w.cpu.share = 1
	w.want(true, "")
}

func TestNotOnBattery(t *testing.T) {
	w := newWorld(t)
	w.power.on = true
	w.want(false, "on battery")
	w.prefs.RunOnBattery = true
	w.want(true, "")
	w.prefs.RunOnBattery = false
	w.power.on = false
	w.want(true, "")
}

func TestTimeWindows(t *testing.T) {
	w := newWorld(t) // noon
	if err := w.prefs.Set("run_hours", "22:00-07:00"); err != nil {
		t.Fatal(err)
	}
	w.want(false, "outside the hours")
	w.advance(10 * time.Hour) // 22:00
	w.want(true, "")
	w.advance(8*time.Hour + 59*time.Minute) // 06:59
	w.want(true, "")
	w.advance(time.Minute)
	w.want(false, "outside the hours")
}
