package release

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/momonga-project/momonga/installers"
)

// versionVar is where the binaries keep their version.
const versionVar = "github.com/momonga-project/momonga/cmd/internal/cliutil.Version"

type builtBinary struct {
	Name     string
	Platform Platform
	Path     string
}

// packages are the Linux packages of this build (all, or those named).
func (b *builder) packages() ([]installers.Package, error) {
	all := installers.Packages()
	if len(b.cfg.Packages) == 0 {
		return all, nil
	}
	var out []installers.Package
	for _, name := range b.cfg.Packages {
		i := slices.IndexFunc(all, func(p installers.Package) bool { return p.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("no package %q (there are momonga and momonga-project)", name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

func binariesOf(pkgs []installers.Package) []string {
	var names []string
	for _, p := range pkgs {
		for _, n := range p.Binaries {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

// binaries builds the programs for one platform, reproducibly: no cgo, no
// paths of this machine, no build id; the version is written in. With
// worker, the worker with wasmtime is built too where a C compiler for the
// platform is here (the map then holds it as installers.WorkerBinary).
func (b *builder) binaries(ctx context.Context, p Platform, names []string, worker bool) (map[string]string, error) {
	out := map[string]string{}
	dir := filepath.Join(b.work, "bin", p.OS+"_"+p.Arch)
	for _, name := range names {
		path, err := b.build(ctx, p, name, filepath.Join(dir, exeName(name, p)), "")
		if err != nil {
			return nil, err
		}
		out[name] = path
	}
	if !worker {
		return out, nil
	}
	cc, why := workerCC(p, hostPlatform, exec.LookPath)
	if cc == "" {
		b.log.Warn("no "+installers.WorkerBinary+": its workers run wazero", "platform", p, "why", why)
		b.notes = append(b.notes, fmt.Sprintf("%s: no %s (%s): its workers run wazero", p, installers.WorkerBinary, why))
		return out, nil
	}
	path, err := b.build(ctx, p, installers.WorkerBinary, filepath.Join(dir, exeName(installers.WorkerBinary, p)), cc, "-tags", "wasmtime")
	if err != nil {
		return nil, err
	}
	out[installers.WorkerBinary] = path
	return out, nil
}

// build builds ./cmd/name for p into path; cc is the C compiler for cgo,
// "" for none.
func (b *builder) build(ctx context.Context, p Platform, name, path, cc string, flags ...string) (string, error) {
	args := append([]string{"build", "-trimpath", "-buildvcs=true",
		"-ldflags", "-s -w -buildid= -X " + versionVar + "=" + b.version}, flags...)
	cmd := exec.CommandContext(ctx, "go", append(args, "-o", path, "./cmd/"+name)...)
	cmd.Dir = b.cfg.Root
	cmd.Env = append(os.Environ(), "GOOS="+p.OS, "GOARCH="+p.Arch, "CGO_ENABLED=0", "GOFLAGS=")
	if cc != "" {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=1", "CC="+cc)
	}
	b.log.Info("build", "binary", name, "platform", p, "cc", cc)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s for %s: %v\n%s", name, p, err, strings.TrimSpace(string(out)))
	}
	b.built = append(b.built, builtBinary{Name: filepath.Base(path), Platform: p, Path: path})
	return path, nil
}

func exeName(name string, p Platform) string {
	if p.OS == "windows" {
		return name + ".exe"
	}
	return name
}

// hostPlatform is the platform the build runs on.
var hostPlatform = Platform{runtime.GOOS, runtime.GOARCH}

// wasmtimePlatforms are those wasmtime's Go binding ships its C library
// for; crossCC the C cross compilers that build for them on Debian, with
// their packages.
var (
	wasmtimePlatforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"windows", "amd64"}, {"darwin", "amd64"}, {"darwin", "arm64"}}
	crossCC           = map[Platform][2]string{
		{"linux", "amd64"}:   {"x86_64-linux-gnu-gcc", "gcc-x86-64-linux-gnu"},
		{"linux", "arm64"}:   {"aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"},
		{"windows", "amd64"}: {"x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64"},
	}
)

// workerCC is the C compiler that builds the worker for p on host, or ""
// and why there is none.
func workerCC(p, host Platform, lookPath func(string) (string, error)) (cc, why string) {
	if !slices.Contains(wasmtimePlatforms, p) {
		return "", "wasmtime has no library for " + p.String()
	}
	cc, pkg := "", ""
	switch {
	case p == host && p.OS == "linux":
		cc, pkg = "gcc", "Debian package gcc"
	case p == host && p.OS == "darwin":
		cc, pkg = "cc", "Xcode's command line tools"
	case crossCC[p] != [2]string{}:
		cc, pkg = crossCC[p][0], "Debian package "+crossCC[p][1]
	default:
		return "", "no C cross compiler for " + p.String() + " from " + host.String()
	}
	if _, err := lookPath(cc); err != nil {
		return "", cc + " is not installed (" + pkg + ")"
	}
	return cc, ""
}

// boincPlatforms are the BOINC platforms of the BOINC app
// (project/boinc.Platforms) as Go builds for them.
var boincPlatforms = []struct {
	Name string
	Platform
}{
	{"x86_64-pc-linux-gnu", Platform{"linux", "amd64"}},
	{"aarch64-unknown-linux-gnu", Platform{"linux", "arm64"}},
	{"windows_x86_64", Platform{"windows", "amd64"}},
	{"x86_64-apple-darwin", Platform{"darwin", "amd64"}},
	{"arm64-apple-darwin", Platform{"darwin", "arm64"}},
}

// boincAppName is the file the project's BOINC side serves for a platform
// (project/boinc.RunnerFile).
func boincAppName(platform string) string {
	name := "momonga-boinc-app_" + platform
	if strings.Contains(platform, "windows") {
		name += ".exe"
	}
	return name
}

// boincApps builds the BOINC app for every BOINC platform, by file name.
func (b *builder) boincApps(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	for _, bp := range boincPlatforms {
		name := boincAppName(bp.Name)
		path, err := b.build(ctx, bp.Platform, "momonga-boinc-app", filepath.Join(b.work, "boinc-apps", name), "")
		if err != nil {
			return nil, err
		}
		out[name] = path
	}
	return out, nil
}
