package daemon

import (
	"testing"

	"github.com/momonga-project/momonga/client/runner"
	wu "github.com/momonga-project/momonga/workunits"
)

func ran(engine string, cpu float64) runner.Result {
	return runner.Result{Engine: engine, CPUSeconds: cpu}
}

// TestEngineChoiceLearnsTheFasterEngineForEachApp: an app's first task runs
// on the default engine, its second on the other, then each on the one
// that used less CPU for its work, with a probe of the other now and then;
// apps are learned apart.
func TestEngineChoiceLearnsTheFasterEngineForEachApp(t *testing.T) {
	c := newEngineChoice([]string{runner.EngineWasmtime, runner.EngineWazero, runner.EngineWazeroInterpreter})
	goApp, cApp := wu.HashOf([]byte("go")), wu.HashOf([]byte("c"))
	// The Go app: slightly faster on wazero.
	if e := c.pick(goApp); e != "" {
		t.Fatalf("first task on %q; want the default", e)
	}
	if _, changed := c.record(goApp, 1e9, ran(runner.EngineWasmtime, 10.8)); changed {
		t.Fatal("one engine measured: nothing to choose yet")
	}
	if e := c.pick(goApp); e != runner.EngineWazero {
		t.Fatalf("second task on %q; want wazero, not yet measured", e)
	}
	if best, changed := c.record(goApp, 1e9, ran(runner.EngineWazero, 10.6)); !changed || best != runner.EngineWazero {
		t.Fatalf("after both: best %q, changed %v", best, changed)
	}
	// The C app: twice as fast on the default.
	c.pick(cApp)
	c.record(cApp, 2e9, ran(runner.EngineWasmtime, 6))
	c.pick(cApp)
	c.record(cApp, 2e9, ran(runner.EngineWazero, 12))

	probes := 0
	for i := 3; i <= 2*probeEvery; i++ {
		switch e := c.pick(goApp); e {
		case runner.EngineWazero:
		case "":
			probes++
		default:
			t.Fatalf("task %d of the Go app on %q", i, e)
		}
		if e := c.pick(cApp); e != "" && e != runner.EngineWazero {
			t.Fatalf("task %d of the C app on %q", i, e)
		}
	}
	if probes != 2 {
		t.Fatalf("%d probes of the default in %d tasks; want 2", probes, 2*probeEvery-2)
	}
	// A run that was resumed, stopped or failed teaches nothing: a much
	// cheaper one on the default would have changed the choice.
	for _, r := range []runner.Result{
		{Engine: runner.EngineWasmtime, CPUSeconds: 1, Resumed: &runner.Resumed{}},
		{Engine: runner.EngineWasmtime, CPUSeconds: 1, Stopped: true},
		{Engine: runner.EngineWasmtime, CPUSeconds: 1, Failed: true},
	} {
		if _, changed := c.record(goApp, 1e9, r); changed {
			t.Fatalf("%+v changed the choice", r)
		}
	}
	if e := c.pick(goApp); e != runner.EngineWazero && e != "" {
		t.Fatalf("after runs that teach nothing: %q", e)
	}
	// Measured per operation: a task of a bigger unit may take longer.
	if best, changed := c.record(goApp, 4e9, ran(runner.EngineWasmtime, 20)); !changed || best != runner.EngineWasmtime {
		t.Fatalf("wasmtime at 5 ns per operation against wazero's 10.6: best %q, changed %v", best, changed)
	}
}

// TestEngineChoiceNeedsTwoEngines: a worker with wazero only (and its
// interpreter), or a daemon given its worker without its engines, leaves
// every task to the worker's default.
func TestEngineChoiceNeedsTwoEngines(t *testing.T) {
	app := wu.HashOf([]byte("app"))
	for _, engines := range [][]string{nil, {runner.EngineWazero}, {runner.EngineWazero, runner.EngineWazeroInterpreter}} {
		c := newEngineChoice(engines)
		for range 3 {
			if e := c.pick(app); e != "" {
				t.Fatalf("%v: picked %q", engines, e)
			}
			c.record(app, 0, ran(runner.EngineWazero, 1))
		}
	}
}
