package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/client/impact"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out strings.Builder
	a := app()
	a.Writer = &out
	a.ErrWriter = &out
	err := a.Run(append([]string{"momonga"}, args...))
	return out.String(), err
}

func TestVersionAndHelp(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"--help"}, {"run", "--help"}, {"prefs", "set", "--help"}, {"bench", "impact", "--help"}, {"attach", "--help"}} {
		out, err := run(t, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if out == "" {
			t.Errorf("%v printed nothing", args)
		}
	}
}

func TestPrefsWithoutTheClient(t *testing.T) {
	dir := t.TempDir()
	out, err := run(t, "prefs", "set", "--data", dir, "cpu_usage_limit", "150")
	if err == nil || !strings.Contains(err.Error(), "from 1 to 100") {
		t.Errorf("out of range: %v %s", err, out)
	}
	if out, err = run(t, "prefs", "set", "--data", dir, "idle_minutes", "10"); err != nil || !strings.Contains(out, "idle_minutes = 10") {
		t.Fatalf("set: %v %s", err, out)
	}
	out, err = run(t, "prefs", "show", "--data", dir, "--json")
	var p map[string]any
	if err != nil || json.Unmarshal([]byte(out), &p) != nil || p["idle_minutes"] != 10.0 || p["suspend_cpu_percent"] != 25.0 {
		t.Errorf("show: %v %s", err, out)
	}
	if out, err = run(t, "prefs", "show", "--data", dir); err != nil || !strings.Contains(out, "work_buf_extra_days") {
		t.Errorf("show: %v %s", err, out)
	}
	if _, err := run(t, "status", "--data", dir); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("status with no client: %v", err)
	}
}

// TestBenchImpact builds both binaries and runs `momonga bench impact` as the
// README does, with a short idle window.
func TestBenchImpact(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries and runs a project and a client; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("bench impact measures through /proc")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(os.PathSeparator), "../momonga", "../momonga-project")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(filepath.Join(bin, "momonga"), "bench", "impact", "--idle", "3s", "--tasks", "1", "--json")
	start := time.Now()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench impact: %v\n%s%s", err, out, stderr.String())
	}
	var res impact.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("output %s: %v", out, err)
	}
	t.Logf("in %v: %+v", time.Since(start).Round(time.Second), res)
	if res.IdleRSSBytes <= 0 || res.IdleSeconds < 3 || res.SuspendSeconds <= 0 {
		t.Errorf("figures missing: %+v", res)
	}
	if res.SuspendSeconds > 1 {
		t.Errorf("tasks stopped %.2f s after input, want within 1 s", res.SuspendSeconds)
	}
}
