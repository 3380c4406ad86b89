//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/momonga-project/momonga/internal/wait"
	wu "github.com/momonga-project/momonga/workunits"
)

// boincClient is Debian's boinc-client run as a plain process in a
// directory of the test's, on a loopback GUI RPC port.
type boincClient struct {
	t      *testing.T
	p      *project
	dir    string
	port   int
	proc   *proc
	starts int
}

const boincPassword = "momonga-e2e"

// startBOINC starts a BOINC client that computes whatever else the machine
// does, fetches no lists from the Internet and skips its benchmarks.
func startBOINC(t *testing.T, p *project, port int) *boincClient {
	t.Helper()
	for _, bin := range []string{"boinc", "boinccmd"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("boinc-client not installed: no %s in PATH (apt-get install boinc-client)", bin)
		}
	}
	b := &boincClient{t: t, p: p, dir: filepath.Join(p.dir, "boinc"), port: port}
	files := map[string]string{
		"gui_rpc_auth.cfg": boincPassword + "\n",
		"cc_config.xml": `<cc_config>
  <log_flags><sched_op_debug>1</sched_op_debug><task_debug>1</task_debug></log_flags>
  <options>
    <no_info_fetch>1</no_info_fetch>
    <skip_cpu_benchmarks>1</skip_cpu_benchmarks>
    <ncpus>2</ncpus>
  </options>
</cc_config>
`,
		"global_prefs_override.xml": `<global_preferences>
  <run_on_batteries>1</run_on_batteries>
  <run_if_user_active>1</run_if_user_active>
  <suspend_cpu_usage>0</suspend_cpu_usage>
  <idle_time_to_run>0</idle_time_to_run>
  <max_ncpus_pct>100</max_ncpus_pct>
  <cpu_usage_limit>100</cpu_usage_limit>
  <work_buf_min_days>0</work_buf_min_days>
  <work_buf_additional_days>0</work_buf_additional_days>
  <disk_interval>1</disk_interval>
</global_preferences>
`,
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(b.dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b.start()
	return b
}

// start runs the client and waits until it answers GUI RPCs.
func (b *boincClient) start() {
	b.t.Helper()
	b.starts++
	b.proc = start(b.t, b.p.dir, fmt.Sprintf("boinc-%d", b.starts), "boinc", "--dir", b.dir, "--gui_rpc_port", strconv.Itoa(b.port), "--no_gpus")
	wait.For(b.t, 30*time.Second, "the BOINC client to answer", func() bool {
		_, err := b.run("--get_cc_status")
		return err == nil
	})
}

// quit stops the client as `boinccmd --quit` does: it tells its tasks to
// quit, which checkpoint first.
func (b *boincClient) quit() {
	b.t.Helper()
	b.cmd("--quit")
	select {
	case <-b.proc.done:
	case <-time.After(60 * time.Second):
		b.t.Fatal("the BOINC client did not quit")
	}
}

func (b *boincClient) run(args ...string) (string, error) {
	out, err := exec.Command("boinccmd", append([]string{"--host", "127.0.0.1:" + strconv.Itoa(b.port), "--passwd", boincPassword}, args...)...).CombinedOutput()
	return string(out), err
}

func (b *boincClient) cmd(args ...string) string {
	b.t.Helper()
	out, err := b.run(args...)
	if err != nil {
		b.t.Fatalf("boinccmd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// boincTask is what `boinccmd --get_tasks` says of one task.
type boincTask map[string]string

var taskField = regexp.MustCompile(`(?m)^\s+([a-zA-Z_ ]+): (.*)$`)

// tasks lists the client's tasks.
func (b *boincClient) tasks() []boincTask {
	out, err := b.run("--get_tasks")
	if err != nil {
		return nil
	}
	var ts []boincTask
	for _, block := range regexp.MustCompile(`(?m)^\d+\) -+$`).Split(out, -1)[1:] {
		t := boincTask{}
		for _, m := range taskField.FindAllStringSubmatch(block, -1) {
			t[m[1]] = strings.TrimSpace(m[2])
		}
		ts = append(ts, t)
	}
	return ts
}

func (t boincTask) float(field string) float64 {
	f, _ := strconv.ParseFloat(t[field], 64)
	return f
}

// TestBOINCClientComputesBesideAVolunteer is issue 15's acceptance: a stock
// BOINC client attached with an account key computes primes units beside a
// momonga volunteer, each unit replicated on both kinds of host, and every
// result is valid and right; then a long task on the BOINC client is
// suspended, resumed and carried across a restart of the client, and
// continues from its checkpoint to the result an uninterrupted run gives.
func TestBOINCClientComputesBesideAVolunteer(t *testing.T) {
	if _, err := exec.LookPath("boinc"); err != nil {
		t.Skip("boinc-client not installed: no boinc in PATH (apt-get install boinc-client)")
	}
	appsDir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(appsDir, "momonga-boinc-app_x86_64-pc-linux-gnu"), module+"/cmd/momonga-boinc-app")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the BOINC app: %v\n%s", err, out)
	}
	ports := freePorts(t, 2)
	boincURL := fmt.Sprintf("http://127.0.0.1:%d/", ports[0])
	// A BOINC host beats with each scheduler request, which its client makes
	// every 5 s at the soonest: a lease of a minute covers that and a
	// restart of the client.
	p := newProjectWith(t, "--lease", "60s", "--beat", "5s", "--boinc-http", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--boinc-apps", appsDir)
	// The project keeps its code-signing key offline: the server has the
	// public half only, and `app add` signs the apps' BOINC files with the
	// private one where it is.
	offlineKey := filepath.Join(p.dir, "offline-code_sign_private")
	if err := os.Rename(filepath.Join(p.dataDir, "code_sign_private"), offlineKey); err != nil {
		t.Fatal(err)
	}
	signFlags := []string{"--code-sign-key", offlineKey, "--boinc-apps", appsDir}
	t.Logf("app add: %s", strings.TrimSpace(p.mustCLI("app add", append(signFlags, "primes", primesWasm)...)))
	mandelrWasm, err := filepath.Abs(filepath.Join("..", "apps", "mandelr.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	p.mustCLI("app add", append(signFlags, "mandelr", mandelrWasm)...)

	const limit, ranges = 3_000_000, 6
	sieve := newPrimeSieve(limit)
	spec := batchSpec{App: "primes", Batch: "boinc-primes", Replication: 2, Quorum: 2}
	want := map[string]int{}
	for i := range ranges {
		a, b := i*limit/ranges, (i+1)*limit/ranges
		name := fmt.Sprintf("range-%02d", i)
		spec.Units = append(spec.Units, unitSpec{Name: name, Args: []string{strconv.Itoa(a), strconv.Itoa(b)}})
		want[name] = sieve.count(a, b)
	}
	p.mustCLI("submit", "--spec", p.writeSpec(spec))

	vol := p.startClient("vol")
	m := accountKeyLine.FindStringSubmatch(p.mustCLI("user add", "boinc-ann"))
	if m == nil {
		t.Fatal("user add printed no account key")
	}
	bc := startBOINC(t, p, ports[1])
	t.Logf("boinccmd --project_attach %s KEY: %s", boincURL, strings.TrimSpace(bc.cmd("--project_attach", boincURL, m[1])))

	// While the batch runs, `boinccmd --get_tasks` shows the tasks the BOINC
	// client holds and how far they are.
	shown := false
	st := p.waitStatus(3*time.Minute, "the primes batch to be done", func(st wu.StatusReply) bool {
		for _, task := range bc.tasks() {
			if task["active_task_state"] == "EXECUTING" || task["state"] == "uploaded" {
				if !shown {
					t.Logf("boinccmd --get_tasks: %s %s, active_task_state %s, current CPU time %s, fraction done %s",
						task["name"], task["state"], task["active_task_state"], task["current CPU time"], task["fraction done"])
				}
				shown = true
			}
		}
		b, ok := batchStatus(st, spec.Batch)
		return ok && b.Done()
	})
	if !shown {
		t.Error("boinccmd --get_tasks never showed a task of the batch")
	}
	dir, manifest := p.results(spec.Batch)
	checkManifest(t, manifest, spec.Batch, ranges, 2)
	checkPrimeResults(t, dir, want)
	var boincHost, volHost wu.HostStatus
	for _, h := range st.Hosts {
		switch h.User {
		case "boinc-ann":
			boincHost = h
		case "vol":
			volHost = h
		}
	}
	if boincHost.ID == "" || volHost.ID == "" {
		t.Fatalf("hosts %+v: want one of user boinc-ann and one of vol", st.Hosts)
	}
	for _, h := range []wu.HostStatus{boincHost, volHost} {
		t.Logf("host %s (%s, user %s, %s/%s): valid %d, invalid %d, credit %.4f", h.ID, h.Info.Name, h.User, h.Info.OS, h.Info.Arch, h.Valid, h.Invalid, h.Credit)
		// Two replicas of a unit never go to one user: every unit was
		// computed once on each kind of host.
		if h.Valid != ranges || h.Invalid != 0 || h.Credit <= 0 {
			t.Errorf("host %s: %d valid, %d invalid, credit %g; want %d valid results with credit", h.ID, h.Valid, h.Invalid, h.Credit, ranges)
		}
	}

	// A long task for the BOINC client alone.
	vol.cmd.Process.Signal(syscall.SIGTERM)
	<-vol.done
	// Its points in the set iterate 1.5 million times: the tile takes about
	// ten seconds of CPU under wazero (five natively), and a task cannot
	// take less wall time than CPU time. The steps below let it compute for
	// a few seconds at most before the test has seen it resume after the
	// client's restart (the client and the app each act once a second), so
	// it checkpoints (every second) long before it could end and is still
	// there after the restart, on a fast machine as on a busy one.
	args := []string{"-0.743643887037151", "0.13182590420533", "0.00001", "128", "256", "1500000"}
	long := batchSpec{App: "mandelr", Batch: "boinc-long", Replication: 1, Quorum: 1, CheckpointSeconds: 1,
		Units: []unitSpec{{Name: "tile", Args: args}}}
	p.mustCLI("submit", "--spec", p.writeSpec(long))
	// The image to compare with, drawn meanwhile.
	nativeImg := startNativeMandel(t, args)
	// A BOINC client that found no work for a while backs off; a user's
	// update asks at once.
	bc.cmd("--project", boincURL, "update")
	var task boincTask
	isLong := func(tk boincTask) bool { return tk["state"] != "uploaded" && tk["ready to report"] != "yes" }
	last := map[string]string{}
	running := func(what string, cond func(boincTask) bool) {
		t.Helper()
		wait.For(t, 2*time.Minute, what, func() bool {
			for _, tk := range bc.tasks() {
				if s := fmt.Sprint(tk["active_task_state"], ", CPU time at last checkpoint ", tk["CPU time at last checkpoint"], ", fraction done ", tk["fraction done"]); isLong(tk) && s != last[tk["name"]] {
					t.Logf("boinccmd --get_tasks: %s %s", tk["name"], s)
					last[tk["name"]] = s
				}
				if cond(tk) {
					task = tk
					return true
				}
			}
			return false
		})
	}
	running("the long task to checkpoint on the BOINC client", func(tk boincTask) bool {
		return isLong(tk) && tk["active_task_state"] == "EXECUTING" && tk.float("CPU time at last checkpoint") > 0
	})
	t.Logf("running: %s, current CPU time %s, checkpoint CPU time %s, fraction done %s", task["name"], task["current CPU time"], task["CPU time at last checkpoint"], task["fraction done"])
	name := task["name"]
	bc.cmd("--task", boincURL, name, "suspend")
	running("the task to be suspended", func(tk boincTask) bool {
		return tk["name"] == name && tk["suspended via GUI"] == "yes" && tk["active_task_state"] != "EXECUTING"
	})
	t.Logf("suspended: active_task_state %s", task["active_task_state"])
	bc.cmd("--task", boincURL, name, "resume")
	running("the task to run again", func(tk boincTask) bool {
		return tk["name"] == name && tk["suspended via GUI"] != "yes" && tk["active_task_state"] == "EXECUTING"
	})
	before := task.float("CPU time at last checkpoint")
	// Each start of the app in the slot says whether it resumes; the client
	// may already have restarted it once to resume it.
	resumes := func() int {
		stderrs, _ := filepath.Glob(filepath.Join(bc.dir, "slots", "*", "stderr.txt"))
		n := 0
		for _, f := range stderrs {
			b, _ := os.ReadFile(f)
			n += strings.Count(string(b), "resuming from the checkpoint in this slot")
		}
		return n
	}
	resumedBefore := resumes()
	bc.quit()
	bc.start()
	running("the task to run again after the client's restart", func(tk boincTask) bool {
		return tk["name"] == name && tk["active_task_state"] == "EXECUTING"
	})
	if !wait.Until(30*time.Second, pollEvery, func() bool { return resumes() > resumedBefore }) {
		t.Errorf("after the client's restart the task did not resume from its checkpoint (checkpoint CPU time before: %.1f s)", before)
	}
	p.waitBatchDone(long.Batch, 3*time.Minute)
	dir, _ = p.results(long.Batch)
	got, err := os.ReadFile(filepath.Join(dir, "tile"))
	if err != nil {
		t.Fatal(err)
	}
	if wantImg := nativeImg(); string(got) != string(wantImg) {
		t.Errorf("the interrupted task's image (%d bytes) differs from the native render (%d bytes)", len(got), len(wantImg))
	}
}
