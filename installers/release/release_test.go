package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// moduleRoot is the module's directory, two levels up.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func needBuild(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the release's binaries; skipped with -short")
	}
	if raceBuild {
		t.Skip("builds and compresses the release in this process, ten times slower under the race detector: run without -race (.ci/run does)")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed: the release build reads the commit from git")
	}
	if err := exec.Command("git", "-C", moduleRoot(t), "rev-parse", "HEAD").Run(); err != nil {
		t.Skip("not in a git checkout: the release build reads the commit from git")
	}
}

// TestReproducible builds the Linux packages and the Windows installer
// twice from this commit: the two SHA256SUMS are the same. The packages
// are then read with the tools of their systems: rpm -qip/-qlp, msiinfo,
// and the apk's tar streams.
func TestReproducible(t *testing.T) {
	needBuild(t)
	cfg := Config{Root: moduleRoot(t), Version: "0.1.0-test.1", Platforms: []Platform{{"linux", "amd64"}, {"windows", "amd64"}}}
	if _, err := exec.LookPath("wixl"); err != nil {
		t.Log("wixl not installed (Debian package wixl): the MSI is left out")
		cfg.NoMSI = true
	}
	var sums [2][]byte
	var res Result
	for i := range sums {
		cfg.Out = filepath.Join(t.TempDir(), "dist")
		var err error
		start := time.Now()
		if res, err = Build(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		t.Logf("build %d: %d artifacts in %v", i+1, len(res.Artifacts), time.Since(start).Round(time.Second))
		if sums[i], err = os.ReadFile(filepath.Join(cfg.Out, SumsFile)); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(sums[0], sums[1]) {
		t.Fatalf("two builds of one commit differ:\n%s\n%s", sums[0], sums[1])
	}
	t.Logf("%s", sums[0])
	want := []string{"momonga-boinc-apps_0.1.0-test.1.tar.gz", "momonga_0.1.0-test.1_linux_amd64.tar.gz", "momonga_0.1.0-test.1_windows_amd64.zip", "momonga_0.1.0-test.1.spdx.json",
		"momonga_0.1.0~test.1-1_amd64.deb", "momonga-project_0.1.0~test.1-1_amd64.deb",
		"momonga-0.1.0~test.1-1.x86_64.rpm", "momonga-project-0.1.0~test.1-1.x86_64.rpm",
		"momonga_0.1.0_test.1-r1_x86_64.apk", "momonga-project_0.1.0_test.1-r1_x86_64.apk"}
	if !cfg.NoMSI {
		want = append(want, "momonga_0.1.0-test.1_windows_amd64.msi")
	}
	for _, name := range want {
		if !bytes.Contains(sums[0], []byte("  "+name+"\n")) {
			t.Errorf("%s missing from SHA256SUMS", name)
		}
	}
	dist := cfg.Out
	linuxWorker, windowsWorker := checkWorkers(t, res, cfg.Platforms)
	checkArchive(t, filepath.Join(dist, "momonga_0.1.0-test.1_linux_amd64.tar.gz"), res.Time, linuxWorker)
	checkBOINCAppsArchive(t, filepath.Join(dist, "momonga-boinc-apps_0.1.0-test.1.tar.gz"))
	checkRPM(t, filepath.Join(dist, "momonga-0.1.0~test.1-1.x86_64.rpm"), linuxWorker)
	checkProjectRPM(t, filepath.Join(dist, "momonga-project-0.1.0~test.1-1.x86_64.rpm"))
	checkDebs(t, filepath.Join(dist, "momonga_0.1.0~test.1-1_amd64.deb"), filepath.Join(dist, "momonga-project_0.1.0~test.1-1_amd64.deb"), linuxWorker)
	checkAPK(t, filepath.Join(dist, "momonga_0.1.0_test.1-r1_x86_64.apk"))
	if !cfg.NoMSI {
		checkMSI(t, filepath.Join(dist, "momonga_0.1.0-test.1_windows_amd64.msi"), res.Time, windowsWorker)
	}
	checkSBOM(t, filepath.Join(dist, "momonga_0.1.0-test.1.spdx.json"), linuxWorker)
}

// checkWorkers: every platform has the client and either its worker or a
// note saying why not; it says whether linux/amd64 and windows/amd64 have
// their workers.
func checkWorkers(t *testing.T, res Result, platforms []Platform) (linux, windows bool) {
	t.Helper()
	has := map[string]int64{}
	for _, b := range res.Binaries {
		has[b.Platform.String()+" "+strings.TrimSuffix(b.Name, ".exe")] = b.Size
	}
	for _, p := range platforms {
		if has[p.String()+" momonga"] == 0 {
			t.Errorf("no momonga for %s among %v", p, res.Binaries)
		}
		size, ok := has[p.String()+" momonga-worker"]
		noted := slices.ContainsFunc(res.Notes, func(n string) bool { return strings.HasPrefix(n, p.String()+": ") })
		if ok == noted || (ok && size == 0) {
			t.Errorf("%s: worker of %d bytes, notes %q: want a worker or a note", p, size, res.Notes)
		}
		t.Logf("%s: momonga %d bytes, momonga-worker %d bytes", p, has[p.String()+" momonga"], size)
	}
	for _, bp := range boincPlatforms {
		if has[bp.Platform.String()+" "+strings.TrimSuffix(boincAppName(bp.Name), ".exe")] == 0 {
			t.Errorf("no BOINC app for %s", bp.Name)
		}
	}
	t.Logf("notes: %q", res.Notes)
	_, linux = has["linux/amd64 momonga-worker"]
	_, windows = has["windows/amd64 momonga-worker"]
	return linux, windows
}

// boincAppFiles are the BOINC apps' file names, sorted.
func boincAppFiles() []string {
	var names []string
	for _, bp := range boincPlatforms {
		names = append(names, boincAppName(bp.Name))
	}
	slices.Sort(names)
	return names
}

func checkBOINCAppsArchive(t *testing.T, path string) {
	t.Helper()
	names, _ := tarNames(t, path)
	want := []string{"momonga-boinc-apps_0.1.0-test.1/", "momonga-boinc-apps_0.1.0-test.1/README.txt"}
	for _, n := range boincAppFiles() {
		want = append(want, "momonga-boinc-apps_0.1.0-test.1/"+n)
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("BOINC apps archive holds %q, want %q", names, want)
	}
}

// checkProjectRPM: the server's package has the BOINC app of every
// platform where serve looks for them.
func checkProjectRPM(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Log("rpm not installed (Debian package rpm): the rpm is not read back")
		return
	}
	files, err := exec.Command("rpm", "-qlp", path).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qlp: %v\n%s", err, files)
	}
	for _, n := range boincAppFiles() {
		if !bytes.Contains(files, []byte("\n/usr/lib/momonga-project/boinc-apps/"+n+"\n")) {
			t.Errorf("momonga-project rpm lacks %s:\n%s", n, files)
		}
	}
}

// checkDebs reads the debs' file lists with dpkg-deb.
func checkDebs(t *testing.T, client, project string, worker bool) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Log("dpkg-deb not installed (Debian package dpkg): the debs are not read back")
		return
	}
	list := func(path string) string {
		out, err := exec.Command("dpkg-deb", "-c", path).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb -c %s: %v\n%s", path, err, out)
		}
		var files []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0][0] == '-' {
				files = append(files, f[0]+" "+f[len(f)-1])
			}
		}
		return strings.Join(files, "\n")
	}
	got := list(client)
	t.Logf("dpkg-deb -c %s:\n%s", filepath.Base(client), got)
	want := "-rwxr-xr-x ./usr/bin/momonga\n-rw-r--r-- ./usr/lib/systemd/system/momonga.service"
	if worker {
		want = "-rwxr-xr-x ./usr/bin/momonga\n-rwxr-xr-x ./usr/bin/momonga-worker\n-rw-r--r-- ./usr/lib/systemd/system/momonga.service"
	}
	if got != want {
		t.Errorf("momonga deb holds\n%s\nwant\n%s", got, want)
	}
	got = list(project)
	for _, n := range boincAppFiles() {
		if !strings.Contains(got, "-rwxr-xr-x ./usr/lib/momonga-project/boinc-apps/"+n+"\n") {
			t.Errorf("momonga-project deb lacks %s:\n%s", n, got)
		}
	}
}

func checkArchive(t *testing.T, path string, stamp time.Time, worker bool) {
	t.Helper()
	names, times := tarNames(t, path)
	for i, at := range times {
		if !at.Equal(stamp) {
			t.Errorf("%s dated %v, not the commit's %v", names[i], at, stamp)
		}
	}
	want := "momonga_0.1.0-test.1_linux_amd64/ momonga_0.1.0-test.1_linux_amd64/README.txt momonga_0.1.0-test.1_linux_amd64/momonga momonga_0.1.0-test.1_linux_amd64/momonga-project"
	if worker {
		want += " momonga_0.1.0-test.1_linux_amd64/momonga-worker"
	}
	if got := strings.Join(names, " "); got != want {
		t.Errorf("archive holds %s, want %s", got, want)
	}
}

// tarNames lists a .tar.gz's entries and their times.
func tarNames(t *testing.T, path string) ([]string, []time.Time) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	var times []time.Time
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names, times = append(names, h.Name), append(times, h.ModTime)
	}
	return names, times
}

func checkRPM(t *testing.T, path string, worker bool) {
	t.Helper()
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Log("rpm not installed (Debian package rpm): the rpm is not read back")
		return
	}
	info, err := exec.Command("rpm", "-qip", path).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qip: %v\n%s", err, info)
	}
	files, err := exec.Command("rpm", "-qlp", path).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qlp: %v\n%s", err, files)
	}
	scripts, err := exec.Command("rpm", "-qp", "--scripts", path).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm --scripts: %v\n%s", err, scripts)
	}
	t.Logf("rpm -qip:\n%s\nrpm -qlp:\n%s", info, files)
	for _, want := range []string{"Name        : momonga", "Version     : 0.1.0~test.1", "Architecture: x86_64"} {
		if !bytes.Contains(info, []byte(want)) {
			t.Errorf("rpm -qip lacks %q", want)
		}
	}
	want := "/usr/bin/momonga\n/usr/lib/systemd/system/momonga.service\n"
	if worker {
		want = "/usr/bin/momonga\n/usr/bin/momonga-worker\n/usr/lib/systemd/system/momonga.service\n"
	}
	if string(files) != want {
		t.Errorf("rpm -qlp:\n%s\nwant\n%s", files, want)
	}
	for _, want := range []string{"preinstall scriptlet", "postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "useradd --system"} {
		if !bytes.Contains(scripts, []byte(want)) {
			t.Errorf("rpm scripts lack %q", want)
		}
	}
}

// checkAPK reads an apk: gzip streams of tar, the control one with the
// scripts, the data one with the files.
func checkAPK(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		gz, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		gz.Multistream(false)
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			names = append(names, h.Name)
		}
		io.Copy(io.Discard, gz)
	}
	got := " " + strings.Join(names, " ") + " "
	for _, want := range []string{" .PKGINFO ", " .pre-install ", " .post-install ", " .pre-upgrade ", " .post-upgrade ", " .pre-deinstall ", " .post-deinstall ", " usr/bin/momonga ", " usr/lib/systemd/system/momonga.service "} {
		if !strings.Contains(got, want) {
			t.Errorf("apk lacks %s: %s", want, got)
		}
	}
}

func checkMSI(t *testing.T, path string, stamp time.Time, worker bool) {
	t.Helper()
	if _, err := exec.LookPath("msiinfo"); err != nil {
		t.Log("msiinfo not installed (Debian package msitools): the MSI is not read back")
		return
	}
	sum, err := exec.Command("msiinfo", "suminfo", path).CombinedOutput()
	if err != nil {
		t.Fatalf("msiinfo suminfo: %v\n%s", err, sum)
	}
	svc, err := exec.Command("msiinfo", "export", path, "ServiceInstall").CombinedOutput()
	if err != nil {
		t.Fatalf("msiinfo export: %v\n%s", err, svc)
	}
	files, err := exec.Command("msiinfo", "export", path, "File").CombinedOutput()
	if err != nil {
		t.Fatalf("msiinfo export: %v\n%s", err, files)
	}
	t.Logf("msiinfo suminfo:\n%s\nServiceInstall:\n%s", sum, svc)
	created := "Created: " + stamp.Local().Format("Mon Jan _2 15:04:05 2006")
	for _, want := range []string{"Subject: momonga volunteer computing client 0.1.0", "Template: x64;1033", created,
		"Revision number (UUID): {" + guid("package", "0.1.0-test.1", "amd64") + "}"} {
		if !bytes.Contains(sum, []byte(want)) {
			t.Errorf("suminfo lacks %q", want)
		}
	}
	for _, want := range []string{"momonga\tmomonga volunteer computing client\t16\t2\t", `NT AUTHORITY\LocalService`, `run --data "[CommonAppDataFolder]momonga"`} {
		if !bytes.Contains(svc, []byte(want)) {
			t.Errorf("ServiceInstall lacks %q", want)
		}
	}
	t.Logf("File:\n%s", files)
	// The worker is beside the client, in its directory (INSTALLDIR,
	// Program Files\momonga), where the client looks for it.
	if !bytes.Contains(files, []byte("momonga.exe")) || bytes.Contains(files, []byte("momonga-worker.exe")) != worker {
		t.Errorf("File table (worker %v):\n%s", worker, files)
	}
}

func checkSBOM(t *testing.T, path string, worker bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc spdxDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range doc.Packages {
		names[p.Name] = true
	}
	for _, want := range []string{"momonga", "momonga.exe", "momonga-project", "github.com/momonga-project/momonga", "github.com/nats-io/nats-server/v2",
		"github.com/tetratelabs/wazero", "golang.org/toolchain", "momonga-boinc-app_x86_64-pc-linux-gnu", "momonga-boinc-app_windows_x86_64.exe"} {
		if !names[want] {
			t.Errorf("SBOM has no package %s", want)
		}
	}
	if worker && !names["momonga-worker"] {
		t.Error("SBOM has no momonga-worker")
	}
	if names["github.com/goreleaser/nfpm/v2"] {
		t.Error("the SBOM lists the build's own tools as part of the binaries")
	}
	if doc.SPDXVersion != "SPDX-2.3" || len(doc.Relationships) < len(doc.Packages) {
		t.Errorf("SBOM %s with %d packages, %d relationships", doc.SPDXVersion, len(doc.Packages), len(doc.Relationships))
	}
}

func TestStampSummaryRefusesAnUnknownLayout(t *testing.T) {
	if _, err := stampSummary([]byte("not an msi"), time.Now(), time.Now(), time.Now(), guid("x")); err == nil {
		t.Error("an MSI without a summary was stamped")
	}
}

func TestVersionsAndGUIDs(t *testing.T) {
	for v, want := range map[string]string{"0.1.0": "0.1.0", "1.2.3-dev.45": "1.2.3", "junk": "0.0.0"} {
		if got := msiVersion(v); got != want {
			t.Errorf("msiVersion(%s) = %s, want %s", v, got, want)
		}
	}
	a, b := guid("product", "0.1.0", "amd64"), guid("product", "0.1.1", "amd64")
	if a == b || a != guid("product", "0.1.0", "amd64") || len(a) != 36 || a[14] != '5' {
		t.Errorf("guids %s %s", a, b)
	}
}

// TestWorkerCC: the worker is built with the host's gcc for the host, a
// cross compiler for another platform, and not at all, saying why, for a
// platform wasmtime has no library for or whose compiler is missing.
func TestWorkerCC(t *testing.T) {
	have := func(names ...string) func(string) (string, error) {
		return func(n string) (string, error) {
			if slices.Contains(names, n) {
				return "/usr/bin/" + n, nil
			}
			return "", exec.ErrNotFound
		}
	}
	amd, arm, win := Platform{"linux", "amd64"}, Platform{"linux", "arm64"}, Platform{"windows", "amd64"}
	for _, c := range []struct {
		p, host    Platform
		look       func(string) (string, error)
		cc, whyHas string
	}{
		{amd, amd, have("gcc"), "gcc", ""},
		{arm, amd, have("gcc", "aarch64-linux-gnu-gcc"), "aarch64-linux-gnu-gcc", ""},
		{arm, amd, have("gcc"), "", "aarch64-linux-gnu-gcc is not installed (Debian package gcc-aarch64-linux-gnu)"},
		{amd, arm, have("gcc", "x86_64-linux-gnu-gcc"), "x86_64-linux-gnu-gcc", ""},
		{win, amd, have("x86_64-w64-mingw32-gcc"), "x86_64-w64-mingw32-gcc", ""},
		{win, amd, have("gcc"), "", "x86_64-w64-mingw32-gcc is not installed (Debian package gcc-mingw-w64-x86-64)"},
		{Platform{"windows", "arm64"}, amd, have("gcc"), "", "wasmtime has no library for windows/arm64"},
		{Platform{"darwin", "arm64"}, amd, have("gcc"), "", "no C cross compiler for darwin/arm64 from linux/amd64"},
		{Platform{"darwin", "arm64"}, Platform{"darwin", "arm64"}, have("cc"), "cc", ""},
	} {
		cc, why := workerCC(c.p, c.host, c.look)
		if cc != c.cc || why != c.whyHas {
			t.Errorf("%s on %s: %q (%q), want %q (%q)", c.p, c.host, cc, why, c.cc, c.whyHas)
		}
	}
}
