package daemon

import (
	"context"
	"crypto/ed25519"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/idle"
	"github.com/momonga-project/momonga/client/prefs"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/internal/procstat"
	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/server"
	wu "github.com/momonga-project/momonga/workunits"
)

// headlessChromium starts Debian's chromium, headless, with a profile of its
// own and nothing that reaches beyond this machine, and returns a browser
// context; the test is skipped where chromium is not installed.
func headlessChromium(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("chromium not installed (Debian: apt-get install chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true), chromedp.WindowSize(1200, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// screenshotDir is where the page's screenshots go: $MOMONGA_SCREENSHOTS,
// or the test's temporary directory.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("MOMONGA_SCREENSHOTS"); d != "" {
		return d
	}
	return t.TempDir()
}

// startMandelClient starts an open project that publishes the Mandelbrot
// reactor with one work unit that runs for a while, and a client attached
// to it that computes it with the real worker; it returns when the client's
// control API is up.
func startMandelClient(t *testing.T, ctx context.Context) (*Daemon, string) {
	t.Helper()
	// The first project is open and publishes the Mandelbrot reactor.
	scfg := server.Embedded(t.TempDir(), "127.0.0.1:0")
	scfg.Sched = sched.Config{Project: "mandelbrot", Lease: time.Minute, Beat: time.Second, Retry: 200 * time.Millisecond}
	scfg.Trust = server.Trust{Open: true, SigningKey: key(1).Public().(ed25519.PublicKey)}
	open, err := server.Start(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { open.Close() })
	adm, err := admin.Dial(ctx, open.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	module, err := wu.PrepareModule(apps.MandelR)
	if err != nil {
		t.Fatal(err)
	}
	app, err := adm.AddApp(ctx, "mandelr", module, wu.SignApp(key(1), module).Encode(), wu.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	// Deep enough to outlast every step of the test on a fast machine (it is
	// never waited for to end), so that the browser sees it move and the
	// suspend and resume find its worker.
	args := []string{"-0.743643887037158704752191506114774", "0.131825904205311970493132056385139", "2e-11", "640", "480", "200000"}
	if _, err := adm.Submit(ctx, wu.Submit{Batch: "b", App: app.Name, Replication: 1, Quorum: 1, Units: []wu.UnitSpec{{Args: args}}}); err != nil {
		t.Fatal(err)
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dedicated := prefs.Defaults()
	dedicated.RunIfUserActive, dedicated.RunOnBattery, dedicated.SuspendCPUPercent = true, true, 0
	data := t.TempDir()
	d := runDaemon(t, Config{DataDir: data, Project: open.ClientURL(), CPUs: 1, Prefs: &dedicated,
		Worker: runner.Worker{Command: []string{exe, argWorker}}, Monitor: idle.Unwatched(),
		Benchmark: func(context.Context) (host.Benchmarks, error) {
			return host.Benchmarks{FLOPS: 2e9, IOPS: 3e9, MemBytesPerSec: 5e9, WasmOPS: 4e8, Seconds: 0.1}, nil
		}})
	wait.For(t, time.Minute, "the control API", func() bool { _, err := control.Dial(data); return err == nil })
	return d, data
}

// TestVolunteerPageInABrowser drives the client's page in Chromium against
// a real client computing the Mandelbrot reactor for a real project: the
// progress moves, suspend and resume reach the task's worker, a preference
// is set and one out of range refused, a second project is attached with
// an account key, and the event log shows what happened.
func TestVolunteerPageInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: runs two projects, a client and a browser")
	}
	browser := headlessChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	d, data := startMandelClient(t, ctx)

	// The second asks for accounts: the volunteer has an account key.
	scfg2 := server.Embedded(t.TempDir(), "127.0.0.1:0")
	scfg2.Sched = sched.Config{Project: "accounts", Lease: time.Minute, Beat: time.Second, Retry: 200 * time.Millisecond}
	scfg2.Trust = server.Trust{SigningKey: key(1).Public().(ed25519.PublicKey)}
	secured, err := server.Start(ctx, scfg2)
	if err != nil {
		t.Fatal(err)
	}
	defer secured.Close()
	adm2, err := admin.Dial(ctx, secured.ClientURL(), nats.UserCredentials(secured.AdminCreds()))
	if err != nil {
		t.Fatal(err)
	}
	defer adm2.Close()
	_, accountKey, err := adm2.AddUser(ctx, "ada", "", "")
	if err != nil {
		t.Fatal(err)
	}

	addr, _ := os.ReadFile(filepath.Join(data, control.AddrFile))
	token, _ := os.ReadFile(filepath.Join(data, control.TokenFile))
	base := "http://" + strings.TrimSpace(string(addr))
	shots := screenshotDir(t)

	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		actx, cancel := context.WithTimeout(browser, time.Minute)
		defer cancel()
		if err := chromedp.Do(actx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	get := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		actx, cancel := context.WithTimeout(browser, time.Minute)
		defer cancel()
		s, err := chromedp.Run(actx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return s
	}
	text := func(sel string) string { return get("read "+sel, chromedp.Text(chromedp.CSS(sel))) }
	shot := func(name string) {
		actx, cancel := context.WithTimeout(browser, time.Minute)
		defer cancel()
		png, err := chromedp.Run(actx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// waitText polls the page (which updates itself) until sel's text
	// satisfies ok.
	waitText := func(what, sel string, ok func(string) bool) string {
		t.Helper()
		var s string
		var err error
		// Minutes at worst: the worker compiles the module first, slowly
		// under the race detector on a loaded machine.
		ok2 := wait.Until(4*time.Minute, 100*time.Millisecond, func() bool {
			actx, cancel := context.WithTimeout(browser, 5*time.Second)
			defer cancel()
			s, err = chromedp.Run(actx, chromedp.Text(chromedp.CSS(sel)))
			return err == nil && ok(s)
		})
		if !ok2 {
			actx, cancel := context.WithTimeout(browser, 5*time.Second)
			html, _ := chromedp.Run(actx, chromedp.OuterHTML(chromedp.CSS("#live")))
			cancel()
			t.Fatalf("after 4 min, still waiting for %s: %s reads %q (%v)\nstatus %+v\nprojects %+v\ntasks %+v\npage: %s", what, sel, s, err, d.Status(), d.Projects(), d.Tasks(), html)
		}
		return s
	}
	progress := func() float64 {
		s := strings.TrimSuffix(strings.TrimSpace(text("#tasks tr.task .pct")), "%")
		f, _ := strconv.ParseFloat(s, 64)
		return f
	}

	// The token once, then the cookie: the address bar no longer holds it.
	run("open the page", chromedp.Navigate(base+"/?token="+url.QueryEscape(strings.TrimSpace(string(token)))))
	location := get("location", chromedp.Location())
	if location != base+"/" {
		t.Errorf("the page stays at %s, want %s/", location, base)
	}
	waitText("a running task", "#tasks", func(s string) bool { return strings.Contains(s, "mandelr") && strings.Contains(s, "running") })
	waitText("progress", "#tasks tr.task .pct", func(s string) bool { return s != "" && s != "0.0%" })
	first := progress()
	waitText("the progress moving", "#tasks tr.task .pct", func(string) bool { return progress() > first })
	waitText("the tile so far", "#tasks", func(string) bool {
		actx, cancel := context.WithTimeout(browser, 5*time.Second)
		defer cancel()
		n, err := chromedp.Run(actx, chromedp.Evaluate[int](`document.querySelectorAll("#tasks img.thumb").length`))
		return err == nil && n > 0
	})
	waitText("the credit asked", "#projects", func(s string) bool { return !strings.Contains(s, "asking the project") })
	shot("page-running.png")
	t.Logf("progress moved from %.1f%% to %.1f%%", first, progress())

	// Suspend: the worker process stops; resume: it runs on.
	run("suspend", chromedp.Click(chromedp.CSS("#suspend")))
	waitText("suspended", "#why", func(s string) bool { return strings.Contains(s, "suspended") })
	wait.For(t, 10*time.Second, "the worker stopped", func() bool { return procstat.AllStopped(workerPIDs(d)) })
	if st := d.Status(); !st.UserSuspended {
		t.Errorf("status after suspend: %+v", st)
	}
	shot("page-suspended.png")
	run("resume", chromedp.WaitVisible(chromedp.CSS("#resume")), chromedp.Click(chromedp.CSS("#resume")))
	waitText("computing again", "#why", func(s string) bool { return strings.HasPrefix(s, "computing") })
	wait.For(t, 10*time.Second, "the worker running", func() bool { return procstat.NoneStopped(workerPIDs(d)) })

	// A preference out of range is refused with its range; one within it is
	// set and applied.
	// clearAnswer empties the place where the page shows answers, so that
	// the next one is told from the last.
	clearAnswer := func() {
		run("clear the answer", chromedp.SetJavascriptAttribute(chromedp.CSS("#answer"), "textContent", ""))
	}
	setPref := func(key, value string) string {
		clearAnswer()
		sel := "#pref-" + key
		run("set "+key, chromedp.SetValue(chromedp.CSS(sel), value),
			chromedp.Click(chromedp.CSS(`form.pref input[value="`+key+`"] ~ button`)))
		return waitText("the answer to "+key, "#answer", func(s string) bool { return strings.Contains(s, key) })
	}
	if got := setPref("cpu_usage_limit", "150"); !strings.Contains(got, "from 1 to 100") {
		t.Errorf("out-of-range preference answered %q", got)
	}
	if d.Prefs().CPUUsageLimit != 100 {
		t.Errorf("the refused value was applied: %v", d.Prefs().CPUUsageLimit)
	}
	if got := setPref("cpu_usage_limit", "80"); got != "cpu_usage_limit = 80" {
		t.Errorf("preference answered %q", got)
	}
	if d.Prefs().CPUUsageLimit != 80 {
		t.Errorf("cpu_usage_limit is %v, want 80", d.Prefs().CPUUsageLimit)
	}

	// A second project, with the volunteer's account key.
	clearAnswer()
	run("attach", chromedp.SetValue(chromedp.CSS("#attach-url"), secured.ClientURL()),
		chromedp.SetValue(chromedp.CSS("#attach-key"), accountKey), chromedp.Click(chromedp.CSS("#attach")))
	if got := waitText("the attach answer", "#answer", func(s string) bool { return s != "" }); got != "attached "+secured.ClientURL() {
		t.Fatalf("attach answered %q", got)
	}
	waitText("the second project connected", "#projects", func(s string) bool {
		return strings.Contains(s, "accounts") && strings.Count(s, "connected") >= 2 && !strings.Contains(s, "not connected")
	})
	waitText("the volunteer's name from the second project", "#projects", func(s string) bool { return strings.Contains(s, "as ada") })
	if a, ok, err := loadAttachmentFor(data, secured.ClientURL()); err != nil || !ok || a.User != "ada" {
		t.Errorf("attachment of the second project: %+v %v %v", a, ok, err)
	}

	// The benchmarks, and the event log.
	clearAnswer()
	run("benchmarks", chromedp.Click(chromedp.CSS("#benchmark")))
	waitText("the benchmark figures", "#answer", func(s string) bool { return strings.Contains(s, "2000 MFLOPS") })
	log := waitText("the event log", "#log", func(s string) bool {
		return strings.Contains(s, "task started") && strings.Contains(s, "task suspended")
	})
	if !strings.Contains(log, "suspended by the volunteer") {
		t.Errorf("the log does not say why the task was suspended:\n%s", log)
	}
	shot("page-attached.png")
}
