package runner

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/workunits"
)

// preparedApp writes a sample module as `app add` publishes it; the
// fixtures' build has compiled it into the shared cache already.
func preparedApp(t *testing.T, wasm []byte) (string, workunits.Hash) {
	t.Helper()
	goModule(t, "echo")
	prepared, err := workunits.PrepareModule(wasm)
	if err != nil {
		t.Fatal(err)
	}
	return writeModule(t, prepared), workunits.HashOf(prepared)
}

// mandelArgs draw a small tile in 61 rows, one per step: small enough for
// wazero's interpreter under the race detector.
var mandelArgs = []string{"-0.743643887037151", "0.131825904205330", "2e-9", "16", "61", "300"}

// chain is the resume chain of a written checkpoint.
func chain(w Written) []string {
	if w.Base != "" {
		return []string{w.BasePath, w.Path}
	}
	return []string{w.Path}
}

// runCycles runs spec to its end in runs of two steps, each run resumed
// from the checkpoint the previous one stopped after, on every engine in
// turn (wasmtime where built in, wazero's compiler, wazero's interpreter:
// each resumes what the one before it wrote); it returns the output and the
// number of stops.
func runCycles(t *testing.T, spec Spec, tk *task, steps uint64) ([]byte, int) {
	t.Helper()
	var newest Written
	for cycle := 0; ; cycle++ {
		if cycle > 100 {
			t.Fatal("no end after 100 cycles")
		}
		stop := make(chan struct{})
		ck := *spec.Checkpoint
		spec.Engine = Engines()[cycle%len(Engines())]
		if newest.Seq > 0 {
			ck.Resume = chain(newest)
		}
		spec.Checkpoint = &ck
		start := newest.Steps
		var once sync.Once
		res := RunControlled(context.Background(), spec, Control{Stop: stop, Written: func(w Written) {
			newest = w
			if w.Steps >= start+steps {
				once.Do(func() { close(stop) })
			}
		}})
		if res.Resumed != nil && res.Resumed.Error != "" {
			t.Fatalf("cycle %d: checkpoint refused: %s", cycle, res.Resumed.Error)
		}
		if res.Engine != spec.Engine {
			t.Fatalf("cycle %d ran on %s, want %s", cycle, res.Engine, spec.Engine)
		}
		if !res.Stopped {
			if res.Failed {
				t.Fatalf("cycle %d: %s (%s)", cycle, res.Reason, res.Stderr)
			}
			out, err := os.ReadFile(tk.output)
			if err != nil {
				t.Fatal(err)
			}
			return out, cycle
		}
	}
}

// TestReactorCheckpointCycles is the determinism check of DESIGN §6: the
// same work unit run straight through and with 20 checkpoint/restore cycles,
// on every engine in turn, gives the same output, for the Go reactor and the
// C one.
func TestReactorCheckpointCycles(t *testing.T) {
	for name, wasm := range map[string][]byte{"mandelr": apps.MandelR, "mandelc": apps.MandelC} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			module, hash := preparedApp(t, wasm)
			tk := newTask(t)
			spec := tk.spec(module, workunits.Limits{})
			spec.Args = mandelArgs
			res := Run(context.Background(), spec)
			if res.Failed {
				t.Fatalf("straight run: %s", res.Reason)
			}
			want, _ := os.ReadFile(tk.output)
			if !bytes.HasPrefix(want, []byte("P5\n16 61\n")) {
				t.Fatalf("straight run wrote %q", want[:min(len(want), 20)])
			}

			tk2 := newTask(t)
			spec2 := tk2.spec(module, workunits.Limits{})
			spec2.Args = mandelArgs
			spec2.Checkpoint = &CheckpointSpec{App: hash, Task: "wu1_0", Dir: t.TempDir(), Interval: 1e-9}
			got, cycles := runCycles(t, spec2, tk2, 2)
			if cycles != 20 {
				t.Errorf("%d checkpoint/restore cycles, want 20", cycles)
			}
			if workunits.HashOf(got) != workunits.HashOf(want) {
				t.Errorf("output after %d cycles hashes to %s, straight through to %s", cycles, workunits.HashOf(got).Short(), workunits.HashOf(want).Short())
			}
			if p, _ := os.ReadFile(filepath.Join(tk2.dir, "progress")); !strings.HasPrefix(string(p), "1") {
				t.Errorf("progress file at the end: %q", p)
			}
		})
	}
}

// TestRefusedCheckpointStartsOver feeds a reactor bad checkpoints: each is
// refused with a clear reason, and the task computes the right result from
// the start.
func TestRefusedCheckpointStartsOver(t *testing.T) {
	module, hash := preparedApp(t, apps.MandelR)
	args := []string{"-0.743643887037151", "0.131825904205330", "2e-9", "16", "8", "1000"}
	tk := newTask(t)
	spec := tk.spec(module, workunits.Limits{})
	spec.Args = args
	ckDir := t.TempDir()
	spec.Checkpoint = &CheckpointSpec{App: hash, Task: "wu1_0", Dir: ckDir, Interval: 1e-9}
	stop := make(chan struct{})
	var good Written
	var once sync.Once
	res := RunControlled(context.Background(), spec, Control{Stop: stop, Written: func(w Written) {
		good = w
		if w.Steps >= 3 {
			once.Do(func() { close(stop) })
		}
	}})
	if !res.Stopped || good.Seq == 0 {
		t.Fatalf("no checkpoint to play with: %+v", res)
	}
	straight := newTask(t)
	sspec := straight.spec(module, workunits.Limits{})
	sspec.Args = args
	if res := Run(context.Background(), sspec); res.Failed {
		t.Fatal(res.Reason)
	}
	want, _ := os.ReadFile(straight.output)

	blob, err := os.ReadFile(good.Path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) []string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{p}
	}
	flipped := bytes.Clone(blob)
	flipped[len(flipped)/2] ^= 4
	newer := bytes.Clone(blob)
	binary.LittleEndian.PutUint16(newer[8:], workunits.CheckpointVersion+1)
	for name, c := range map[string]struct {
		chain []string
		app   workunits.Hash
		want  string
	}{
		"flipped bit":   {write("flipped", flipped), hash, "checksum"},
		"truncated":     {write("truncated", blob[:len(blob)/3]), hash, "checksum"},
		"other app":     {chain(good), workunits.HashOf([]byte("another app")), "checkpoint is of app"},
		"newer version": {write("newer", newer), hash, "newer than this program reads"},
		"missing":       {[]string{filepath.Join(t.TempDir(), "gone")}, hash, "read checkpoint"},
	} {
		t.Run(name, func(t *testing.T) {
			tk := newTask(t)
			spec := tk.spec(module, workunits.Limits{})
			spec.Args = args
			spec.Checkpoint = &CheckpointSpec{App: c.app, Task: "wu1_0", Dir: t.TempDir(), Resume: c.chain}
			res := Run(context.Background(), spec)
			if res.Failed || res.Resumed == nil || !strings.Contains(res.Resumed.Error, c.want) {
				t.Fatalf("result %+v; want success after refusing the checkpoint with %q", res, c.want)
			}
			if got, _ := os.ReadFile(tk.output); !bytes.Equal(got, want) {
				t.Error("the run that started over drew a different image")
			}
		})
	}
}

// TestAppCheckpoints runs a command module that checkpoints through the SDK,
// stopping it after each of its checkpoints and resuming it.
func TestAppCheckpoints(t *testing.T) {
	module := goModule(t, "appckpt")
	b, err := os.ReadFile(module)
	if err != nil {
		t.Fatal(err)
	}
	hash := workunits.HashOf(b)
	// Long enough for a run to reach its fourth checkpoint (10 ms apart)
	// many times over on a fast machine: at 300,000 numbers a run ended
	// before it, and the app was never stopped.
	const n = "10000000"
	straight := newTask(t)
	sspec := straight.spec(module, workunits.Limits{})
	sspec.Args = []string{n}
	if res := Run(context.Background(), sspec); res.Failed {
		t.Fatal(res.Reason, res.Stderr)
	}
	want, _ := os.ReadFile(straight.output)

	tk := newTask(t)
	spec := tk.spec(module, workunits.Limits{})
	spec.Args = []string{n}
	spec.Checkpoint = &CheckpointSpec{App: hash, Task: "wu1_0", Dir: t.TempDir(), Interval: 0.01}
	var newest Written
	stops := 0
	for range 200 {
		if newest.Seq > 0 {
			spec.Checkpoint.Resume = chain(newest)
		}
		// Each run stops after its fourth checkpoint.
		stop := make(chan struct{}, 1)
		written := 0
		res := RunControlled(context.Background(), spec, Control{Stop: stop, Written: func(w Written) {
			newest = w
			if written++; written == 4 {
				stop <- struct{}{}
			}
		}})
		if res.Resumed != nil && res.Resumed.Error != "" {
			t.Fatal(res.Resumed.Error)
		}
		if !res.Stopped {
			if res.Failed {
				t.Fatal(res.Reason, res.Stderr)
			}
			break
		}
		stops++
	}
	got, _ := os.ReadFile(tk.output)
	t.Logf("%d stops", stops)
	if stops < 2 || !bytes.Equal(got, want) {
		t.Errorf("after %d stops the app printed %q; straight through %q", stops, got, want)
	}
}

// TestWorkerCheckpoints drives checkpoints of a worker process through its
// pipe: one on request, then one before it stops.
func TestWorkerCheckpoints(t *testing.T) {
	module, hash := preparedApp(t, apps.MandelR)
	tk := newTask(t)
	spec := tk.spec(module, workunits.Limits{})
	spec.Args = []string{"-0.743643887037151", "0.131825904205330", "2e-9", "64", "2000", "3000"}
	spec.Checkpoint = &CheckpointSpec{App: hash, Task: "wu1_0", Dir: t.TempDir()}
	p := start(t, testWorker(t, argWorker), context.Background(), spec)
	if err := p.RequestCheckpoint(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "a requested checkpoint", func() bool { _, ok := p.NewestCheckpoint(); return ok })
	first, _ := p.NewestCheckpoint()
	if err := p.StopAfterCheckpoint(); err != nil {
		t.Fatal(err)
	}
	res := p.Wait()
	last, _ := p.NewestCheckpoint()
	if !res.Stopped || last.Seq != first.Seq+1 || res.Checkpoints != 2 {
		t.Fatalf("result %+v, checkpoints %d then %d", res, first.Seq, last.Seq)
	}
	if _, err := os.Stat(last.Path); err != nil {
		t.Errorf("newest checkpoint file: %v", err)
	}
}

// TestCheckpointAndSuspend: a worker checkpoints before it is suspended.
func TestCheckpointAndSuspend(t *testing.T) {
	module, hash := preparedApp(t, apps.MandelR)
	tk := newTask(t)
	spec := tk.spec(module, workunits.Limits{})
	spec.Args = []string{"-0.743643887037151", "0.131825904205330", "2e-9", "64", "2000", "3000"}
	spec.Checkpoint = &CheckpointSpec{App: hash, Task: "wu1_0", Dir: t.TempDir()}
	p := start(t, testWorker(t, argWorker), context.Background(), spec)
	w, ok, err := p.CheckpointAndSuspend(context.Background(), 30*time.Second)
	if err != nil || !ok || w.Seq != 1 {
		t.Fatalf("checkpoint before suspending: %+v %v %v", w, ok, err)
	}
	cpu := cpuTime(t, p)
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "CPU time after resuming", func() bool { return cpuTime(t, p) > cpu })
}
