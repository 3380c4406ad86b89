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
	want := []string{"momonga_0.1.0-test.1_linux_amd64.tar.gz", "momonga_0.1.0-test.1_windows_amd64.zip", "momonga_0.1.0-test.1.spdx.json",
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
	checkArchive(t, filepath.Join(dist, "momonga_0.1.0-test.1_linux_amd64.tar.gz"), res.Time)
	checkRPM(t, filepath.Join(dist, "momonga-0.1.0~test.1-1.x86_64.rpm"))
	checkAPK(t, filepath.Join(dist, "momonga_0.1.0_test.1-r1_x86_64.apk"))
	if !cfg.NoMSI {
		checkMSI(t, filepath.Join(dist, "momonga_0.1.0-test.1_windows_amd64.msi"), res.Time)
	}
	checkSBOM(t, filepath.Join(dist, "momonga_0.1.0-test.1.spdx.json"))
}

func checkArchive(t *testing.T, path string, stamp time.Time) {
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
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(stamp) {
			t.Errorf("%s dated %v, not the commit's %v", h.Name, h.ModTime, stamp)
		}
		names = append(names, h.Name)
	}
	if got := strings.Join(names, " "); got != "momonga_0.1.0-test.1_linux_amd64/ momonga_0.1.0-test.1_linux_amd64/README.txt momonga_0.1.0-test.1_linux_amd64/momonga momonga_0.1.0-test.1_linux_amd64/momonga-project" {
		t.Errorf("archive holds %s", got)
	}
}

func checkRPM(t *testing.T, path string) {
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
	if string(files) != "/usr/bin/momonga\n/usr/lib/systemd/system/momonga.service\n" {
		t.Errorf("rpm -qlp:\n%s", files)
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

func checkMSI(t *testing.T, path string, stamp time.Time) {
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
	if !bytes.Contains(files, []byte("momonga.exe")) {
		t.Errorf("File table:\n%s", files)
	}
}

func checkSBOM(t *testing.T, path string) {
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
		"github.com/tetratelabs/wazero", "golang.org/toolchain"} {
		if !names[want] {
			t.Errorf("SBOM has no package %s", want)
		}
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
