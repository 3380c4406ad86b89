package runner

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/workunits"
)

// BenchmarkShortTasks runs primes work units of 10^5 numbers (about 10 ms
// of computing each) one after another through worker processes, as a
// client with one slot does: ms/task is the slot time one short task costs,
// start, compilation (from the cache), run and result included; a new
// process for each task, then a warm pool.
func BenchmarkShortTasks(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	w := Worker{Command: []string{exe, argWorker}}
	b.Run("process-per-task", func(b *testing.B) { benchShortTasks(b, w) })
	b.Run("warm-pool", func(b *testing.B) { benchShortTasks(b, w.Pooled(1, time.Minute)) })
}

func benchShortTasks(b *testing.B, w Worker) {
	dir := b.TempDir()
	module := filepath.Join(dir, "primes.wasm")
	if err := os.WriteFile(module, apps.Primes, 0o600); err != nil {
		b.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	run := func(i int) {
		task := filepath.Join(dir, "task"+strconv.Itoa(i))
		if err := os.Mkdir(task, 0o700); err != nil {
			b.Fatal(err)
		}
		lo := 1_000_000_000 + i*100_000
		spec := Spec{Module: module, Name: "primes", Args: []string{strconv.Itoa(lo), strconv.Itoa(lo + 100_000)},
			Dir: task, Output: filepath.Join(task, "out"), CacheDir: cache, Limits: workunits.Limits{MaxSeconds: 60}}
		p, err := w.Start(context.Background(), spec)
		if err != nil {
			b.Fatal(err)
		}
		if res := p.Wait(); res.Failed {
			b.Fatal(res.Reason)
		}
		os.RemoveAll(task)
	}
	run(-1) // fills the compilation cache, as a client's first task of an app does
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		run(i)
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/task")
}
