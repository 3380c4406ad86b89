//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/internal/wait"
	wu "github.com/momonga-project/momonga/workunits"
)

// TestClientKilledMidTask kills a volunteer client with SIGKILL while it
// computes a task of a few seconds. Its orphaned worker process stops by
// itself, the project notices the silence when the task's lease runs out and
// gives the task to the other volunteer, and the batch completes with the
// images the native build of the app draws.
func TestClientKilledMidTask(t *testing.T) {
	p := newProject(t)
	p.mustCLI("app add", "mandel", mandelWasm)

	// Four adjacent tiles of mandel's default deep view, each about three
	// seconds under wazero. Replication 1: the surviving volunteer can take
	// any task, and only the killed host's lease can make a task come back.
	const (
		re, im, scale          = -0.743643887037158704752191506114774, 0.131825904205311970493132056385139, 2e-11
		width, height, maxIter = "512", "384", "20000"
		units                  = 4
	)
	spec := batchSpec{App: "mandel", Batch: "mandel-kill", Replication: 1, Quorum: 1}
	for i := range units {
		tileRe := re + (float64(i)-1.5)*scale
		spec.Units = append(spec.Units, unitSpec{Name: fmt.Sprintf("tile-%d", i), Args: []string{
			strconv.FormatFloat(tileRe, 'g', -1, 64), strconv.FormatFloat(im, 'g', -1, 64), strconv.FormatFloat(scale, 'g', -1, 64),
			width, height, maxIter,
		}})
	}
	p.mustCLI("submit", "--spec", p.writeSpec(spec))
	victim := p.startClient("vol1")
	p.startClient("vol2")

	// Killed before half of its task is done, so that it cannot have
	// reported it: mandel writes the fraction of rows done to a file in the
	// task's directory.
	var workers []int
	p.waitStatus(60*time.Second, "vol1 to be less than half through a task", func(st wu.StatusReply) bool {
		h, _ := hostStatus(st, "vol1")
		workers = ownWorkers(victim.cmd.Process.Pid)
		done, ok := mandelProgress(filepath.Join(p.dir, "vol1"))
		return h.Running > 0 && len(workers) > 0 && ok && done <= 0.5
	})
	victim.kill()
	killedAt := time.Now()
	for _, pid := range workers {
		if !wait.Until(15*time.Second, pollEvery, func() bool { return !alive(pid) }) {
			t.Errorf("worker %d of the killed client still runs 15 s later", pid)
		}
	}

	st := p.waitBatchDone(spec.Batch, 150*time.Second)
	t.Logf("batch done %.1f s after the kill (lease %v, %d tiles of about 3 s for the survivor)", time.Since(killedAt).Seconds(), lease, units)
	dir, manifest := p.results(spec.Batch)
	checkManifest(t, manifest, spec.Batch, units, 1)

	b := mustBatch(t, st, spec.Batch)
	if b.Valid != units || b.Errored != 0 {
		t.Errorf("batch status %+v; want all %d work units valid", b, units)
	}
	killed, _ := hostStatus(st, "vol1")
	survivor, _ := hostStatus(st, "vol2")
	t.Logf("killed host: valid %d, lost %d; surviving host: valid %d, lost %d", killed.Valid, killed.Lost, survivor.Valid, survivor.Lost)
	if killed.Lost < 1 || killed.Running != 0 {
		t.Errorf("killed host: lost %d, running %d; want its task lost and none left on it", killed.Lost, killed.Running)
	}
	if killed.Valid+survivor.Valid != units || survivor.Lost != 0 {
		t.Errorf("valid results: %d by the killed host, %d by the survivor (lost %d); want %d in all, none lost by the survivor",
			killed.Valid, survivor.Valid, survivor.Lost, units)
	}

	for _, u := range spec.Units {
		got, err := os.ReadFile(filepath.Join(dir, u.Name))
		if err != nil {
			t.Errorf("work unit %s: %v", u.Name, err)
			continue
		}
		if want := nativeMandel(t, u.Args); !bytes.Equal(got, want) {
			t.Errorf("work unit %s: the volunteers' image (%d bytes, %s) differs from the native one (%d bytes, %s)",
				u.Name, len(got), wu.HashOf(got).Short(), len(want), wu.HashOf(want).Short())
		}
	}
}

// mandelProgress reads the progress of the mandel task a client with one
// slot is running, from the file mandel keeps in its task directory.
func mandelProgress(clientDir string) (float64, bool) {
	files, _ := filepath.Glob(filepath.Join(clientDir, "slots", "*", "root", "progress"))
	if len(files) != 1 {
		return 0, false
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	return f, err == nil
}

// nativeMandel draws a tile with mandel built for this machine: the app
// promises the same bytes as its WebAssembly module.
func nativeMandel(t *testing.T, args []string) []byte {
	t.Helper()
	return startNativeMandel(t, args)()
}

// startNativeMandel starts drawing a tile natively while the test goes on,
// and returns a function that waits for the image.
func startNativeMandel(t *testing.T, args []string) func() []byte {
	t.Helper()
	dir := t.TempDir() // it writes a progress file where it runs
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, mandelBin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("native mandel %v: %v", args, err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	ended := false
	reap := func() {
		if !ended {
			err, ended = <-done, true
			cancel()
		}
	}
	// Ended before its directory goes, should the test stop first.
	t.Cleanup(func() { cancel(); reap() })
	return func() []byte {
		t.Helper()
		reap()
		if err != nil {
			t.Fatalf("native mandel %v: %v: %s", args, err, stderr.Bytes())
		}
		return stdout.Bytes()
	}
}
