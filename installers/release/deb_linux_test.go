package release

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/project/signing"
	wu "github.com/momonga-project/momonga/workunits"
)

// The deb's life on this machine, as root: what the tests below install and
// remove. They never touch a momonga installed here before them.
const (
	svcUser  = "momonga"
	dataDir  = "/var/lib/momonga"
	unitPath = "/usr/lib/systemd/system/momonga.service"
	wantsDir = "/etc/systemd/system/multi-user.target.wants"
	person   = "mmgtestperson" // the person who installs the package
)

func needDpkg(t *testing.T) {
	t.Helper()
	needBuild(t)
	if os.Geteuid() != 0 {
		t.Skip("installs a package: needs root")
	}
	for _, tool := range []string{"dpkg", "setpriv", "useradd", "userdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian packages dpkg, util-linux, passwd)", tool)
		}
	}
	if status, _ := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", "momonga").Output(); len(status) > 0 && string(status) != "not-installed" {
		t.Skip("a momonga package is installed on this machine: the test installs and purges its own, so it leaves this one alone")
	}
	if _, err := user.Lookup(svcUser); err == nil {
		t.Skip("a momonga user exists on this machine: the test makes and removes its own, so it leaves this one alone")
	}
	if _, err := os.Stat(dataDir); err == nil {
		t.Skip(dataDir + " exists on this machine: the test leaves it alone")
	}
	// Whatever happens, nothing of the test stays.
	t.Cleanup(func() {
		exec.Command("dpkg", "--purge", "momonga").Run()
		exec.Command("userdel", person).Run()
		exec.Command("userdel", svcUser).Run()
		exec.Command("groupdel", svcUser).Run()
		os.RemoveAll(dataDir)
	})
}

func buildDeb(t *testing.T, version string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dist")
	start := time.Now()
	_, err := Build(context.Background(), Config{Root: moduleRoot(t), Out: out, Version: version, Platforms: []Platform{{"linux", archOf(t)}},
		Formats: []string{"deb"}, Packages: []string{"momonga"}, NoMSI: true})
	if err != nil {
		t.Fatal(err)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "momonga_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("debs %v", debs)
	}
	t.Logf("built %s in %v", filepath.Base(debs[0]), time.Since(start).Round(time.Second))
	return debs[0]
}

func archOf(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func sh(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func must(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := sh(t, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// as runs a command as a user, with that user's groups, as a login would.
func as(t *testing.T, who string, args ...string) (string, error) {
	t.Helper()
	home := "/nonexistent"
	if who == svcUser {
		home = dataDir
	}
	full := append([]string{"--reuid=" + who, "--regid=" + who, "--init-groups", "env", "-i", "PATH=/usr/bin:/bin", "HOME=" + home}, args...)
	cmd := exec.Command("setpriv", full...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestDebRefusesAPersonsMomongaAccount: on a machine where momonga is a
// person's account, the package stops before installing anything and says
// why; the account is left as it was.
func TestDebRefusesAPersonsMomongaAccount(t *testing.T) {
	needDpkg(t)
	deb := buildDeb(t, "0.1.0-test.1")
	must(t, nil, "useradd", "--uid", "1500", "--no-create-home", "--shell", "/bin/sh", svcUser)
	before := must(t, nil, "getent", "passwd", svcUser)
	out, err := sh(t, nil, "dpkg", "-i", deb)
	t.Logf("dpkg -i:\n%s", out)
	if err == nil || !strings.Contains(out, "already exists and is a person's account (uid 1500)") || !strings.Contains(out, "Nothing was changed") {
		t.Fatalf("dpkg -i over a person's momonga account: %v", err)
	}
	if after := must(t, nil, "getent", "passwd", svcUser); after != before {
		t.Errorf("the account changed: %s then %s", before, after)
	}
	if _, err := os.Stat("/usr/bin/momonga"); err == nil {
		t.Error("/usr/bin/momonga installed anyway")
	}
	if _, err := os.Stat(dataDir); err == nil {
		t.Error(dataDir + " made anyway")
	}
	if status, _ := sh(t, nil, "dpkg-query", "-W", "-f=${db:Status-Status}", "momonga"); status != "not-installed" && status != "" {
		t.Errorf("package state %q", status)
	}
	exec.Command("dpkg", "--purge", "momonga").Run()
	must(t, nil, "userdel", svcUser)
}

// TestDebInstallAttachUpgradeRemovePurge follows the deb through its life:
// installed by a person with sudo, its service's command run by hand as the
// service user (no systemd runs here), attached by that person to a
// project with an account key, upgraded with its state and attachment
// kept, removed with its data kept, purged with nothing left.
func TestDebInstallAttachUpgradeRemovePurge(t *testing.T) {
	needDpkg(t)
	v1, v2 := buildDeb(t, "0.1.0-test.1"), buildDeb(t, "0.1.0-test.2")
	must(t, nil, "useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh", person)
	proj := startSecureProject(t)

	// Install, as `sudo apt install ./momonga.deb` would.
	out := must(t, []string{"SUDO_USER=" + person}, "dpkg", "-i", v1)
	t.Logf("dpkg -i %s:\n%s", filepath.Base(v1), out)
	u, err := user.Lookup(svcUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	entry := must(t, nil, "getent", "passwd", svcUser)
	t.Logf("user: %s", strings.TrimSpace(entry))
	if uid >= 1000 || uid == 0 || !strings.HasSuffix(strings.TrimSpace(entry), ":"+dataDir+":/usr/sbin/nologin") {
		t.Errorf("service user %s", entry)
	}
	groups := must(t, nil, "id", "-nG", svcUser)
	if _, err := user.LookupGroup("input"); err == nil && !strings.Contains(" "+groups, " input") {
		t.Errorf("service user's groups %q lack input (idle detection reads /dev/input through it)", groups)
	}
	if pg := must(t, nil, "id", "-nG", person); !strings.Contains(" "+pg+" ", " momonga ") && !strings.Contains(pg, " momonga\n") {
		t.Errorf("the installing person's groups %q lack momonga", pg)
	}
	checkMode(t, dataDir, 0o750|os.ModeDir, svcUser)
	checkMode(t, "/usr/bin/momonga", 0o755, "root")
	checkMode(t, unitPath, 0o644, "root")
	// The worker, where the build has its C compiler, lies where the
	// installed client finds it, and the service's tasks below run on it.
	if cc, why := workerCC(Platform{"linux", archOf(t)}, hostPlatform, exec.LookPath); cc != "" {
		checkMode(t, "/usr/bin/momonga-worker", 0o755, "root")
		w, engines := runner.FindWorker(context.Background(), "/usr/bin/momonga")
		t.Logf("the installed client's worker: %v, engines %v", w.Command, engines)
		if len(w.Command) == 0 || w.Command[0] != "/usr/bin/momonga-worker" || !slices.Contains(engines, runner.EngineWasmtime) {
			t.Errorf("the installed client's worker: %v, engines %v", w.Command, engines)
		}
	} else {
		t.Logf("no worker in the package (%s): the client runs wazero", why)
	}
	if _, err := exec.LookPath("systemctl"); err == nil {
		if _, err := os.Lstat(filepath.Join(wantsDir, "momonga.service")); err != nil {
			t.Errorf("the service is not enabled: %v", err)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := sh(t, nil, "systemd-analyze", "verify", "--man=no", unitPath)
		t.Logf("systemd-analyze verify %s: %v %s", unitPath, err, out)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line != "" && !strings.Contains(line, "Cannot add dependency job") {
				t.Errorf("systemd-analyze verify: %s", line)
			}
		}
	} else {
		t.Log("systemd-analyze not installed (Debian package systemd): the unit is not verified")
	}

	// The service's command, by hand, as the service user.
	client := startService(t)
	if !wait.Until(time.Minute, 200*time.Millisecond, func() bool {
		_, err := as(t, person, "momonga", "status")
		return err == nil
	}) {
		t.Fatal("after a minute, `momonga status` still fails")
	}
	status, _ := as(t, person, "momonga", "status")
	t.Logf("momonga status (as %s, no sudo):\n%s", person, status)
	if !strings.Contains(status, "waiting for a project") || !strings.Contains(status, "0 projects") {
		t.Errorf("a client with nothing attached: %s", status)
	}
	// This machine is busy and someone is at it; the project's work should
	// run all the same.
	for _, kv := range [][2]string{{"run_if_user_active", "true"}, {"suspend_cpu_percent", "0"}} {
		if out, err := as(t, person, "momonga", "prefs", "set", kv[0], kv[1]); err != nil {
			t.Fatalf("prefs set: %v %s", err, out)
		}
	}
	out, err = as(t, person, "momonga", "attach", proj.url, "--account-key", proj.key)
	t.Logf("momonga attach (as %s):\n%s", person, out)
	if err != nil || !strings.Contains(out, "attached to deb-test") {
		t.Fatalf("attach: %v", err)
	}
	proj.submit(t, "first")
	wait.For(t, 2*time.Minute, "the first batch computed by the service", func() bool { return proj.done(t, "first") })
	keep := map[string][]byte{}
	for _, name := range []string{"host.json", "host.nk", "project.json"} {
		b, err := os.ReadFile(filepath.Join(dataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		keep[name] = b
	}
	client.stop(t)

	// A newer package over it: the state and the attachment stay.
	out = must(t, nil, "dpkg", "-i", v2)
	t.Logf("dpkg -i %s:\n%s", filepath.Base(v2), out)
	if v := must(t, nil, "/usr/bin/momonga", "--version"); !strings.Contains(v, "0.1.0-test.2") {
		t.Errorf("after the upgrade: %s", v)
	}
	for name, b := range keep {
		if now, err := os.ReadFile(filepath.Join(dataDir, name)); err != nil || !bytes.Equal(now, b) {
			t.Errorf("%s changed by the upgrade (%v)", name, err)
		}
	}
	client = startService(t)
	proj.submit(t, "second")
	wait.For(t, 2*time.Minute, "the second batch computed after the upgrade", func() bool { return proj.done(t, "second") })
	projects, _ := as(t, person, "momonga", "projects")
	t.Logf("momonga projects after the upgrade:\n%s", projects)
	if !strings.Contains(projects, proj.url) {
		t.Errorf("the attachment did not survive the upgrade")
	}
	client.stop(t)

	// Removed: the data stays.
	out = must(t, nil, "dpkg", "-r", "momonga")
	t.Logf("dpkg -r:\n%s", out)
	for _, gone := range []string{"/usr/bin/momonga", unitPath, filepath.Join(wantsDir, "momonga.service")} {
		if _, err := os.Lstat(gone); err == nil {
			t.Errorf("%s stays after removal", gone)
		}
	}
	for name, b := range keep {
		if now, err := os.ReadFile(filepath.Join(dataDir, name)); err != nil || !bytes.Equal(now, b) {
			t.Errorf("%s not kept on removal (%v)", name, err)
		}
	}

	// Purged: nothing left.
	out = must(t, nil, "dpkg", "--purge", "momonga")
	t.Logf("dpkg --purge:\n%s", out)
	if out, err := sh(t, nil, "dpkg", "-L", "momonga"); err == nil {
		t.Errorf("dpkg -L after purge:\n%s", out)
	} else {
		t.Logf("dpkg -L momonga: %s", strings.TrimSpace(out))
	}
	if _, err := os.Stat(dataDir); err == nil {
		t.Errorf("%s stays after purge", dataDir)
	}
	if _, err := user.Lookup(svcUser); err == nil {
		t.Error("the momonga user stays after purge")
	}
	if _, err := user.LookupGroup(svcUser); err == nil {
		t.Error("the momonga group stays after purge")
	}
}

func checkMode(t *testing.T, path string, mode os.FileMode, owner string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	u, _ := user.LookupId(strconv.Itoa(int(st.Sys().(*syscall.Stat_t).Uid)))
	if st.Mode() != mode || u == nil || u.Username != owner {
		t.Errorf("%s: %v owned by %v, want %v owned by %s", path, st.Mode(), u, mode, owner)
	} else {
		t.Logf("%s: %v %s", path, st.Mode(), owner)
	}
}

// serviceProcess is the unit's ExecStart run by hand.
type serviceProcess struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{}
}

func startService(t *testing.T) *serviceProcess {
	t.Helper()
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	var exec_ []string
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			exec_ = strings.Fields(v)
		}
	}
	if len(exec_) == 0 {
		t.Fatalf("no ExecStart in %s", unitPath)
	}
	args := append([]string{"--reuid=" + svcUser, "--regid=" + svcUser, "--init-groups", "env", "-i", "PATH=/usr/bin:/bin", "HOME=" + dataDir}, exec_...)
	cmd := exec.Command("setpriv", args...)
	logs := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serviceProcess{cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *serviceProcess) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("the client did not stop within a minute of SIGTERM:\n%s", p.logs)
	}
	if p.logs.Len() > 0 {
		t.Logf("the client said:\n%s", p.logs)
	}
}

// secureProject is a project server with accounts, in this process.
type secureProject struct {
	url, key string
	srv      *server.Server
	adm      *admin.Client
	app      string
}

func startSecureProject(t *testing.T) *secureProject {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	pub, err := signing.Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Embedded(filepath.Join(dir, "project"), "127.0.0.1:0")
	cfg.Trust = server.Trust{SigningKey: ed25519.PublicKey(pub)}
	cfg.Sched.Project = "deb-test"
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	adm, err := admin.Dial(ctx, srv.ClientURL(), nats.UserCredentials(srv.AdminCreds()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	manifest, err := signing.Sign(filepath.Join(dir, signing.PrivateFile), apps.Primes)
	if err != nil {
		t.Fatal(err)
	}
	app, err := adm.AddApp(ctx, "primes", apps.Primes, manifest, wu.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := adm.AddUser(ctx, "volunteer", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return &secureProject{url: srv.ClientURL(), key: key, srv: srv, adm: adm, app: app.Name}
}

func (p *secureProject) submit(t *testing.T, batch string) {
	t.Helper()
	// NoShare: every batch is the same computation, and each must be
	// computed by the service, not given the first one's result.
	_, err := p.adm.Submit(context.Background(), wu.Submit{Batch: batch, App: p.app, Replication: 1, Quorum: 1, NoShare: true,
		Limits: wu.Limits{MemoryBytes: 64 << 20}, Units: []wu.UnitSpec{{Args: []string{"1000000", "1100000"}}}})
	if err != nil {
		t.Fatal(err)
	}
}

func (p *secureProject) done(t *testing.T, batch string) bool {
	for _, b := range p.srv.Status().Batches {
		if b.Name == batch {
			return b.Done()
		}
	}
	return false
}
