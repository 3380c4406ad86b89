package release

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
// paths of this machine, no build id; the version is written in.
func (b *builder) binaries(ctx context.Context, p Platform, names []string) (map[string]string, error) {
	out := map[string]string{}
	dir := filepath.Join(b.work, "bin", p.OS+"_"+p.Arch)
	for _, name := range names {
		exe := name
		if p.OS == "windows" {
			exe += ".exe"
		}
		path := filepath.Join(dir, exe)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=true",
			"-ldflags", "-s -w -buildid= -X "+versionVar+"="+b.version,
			"-o", path, "./cmd/"+name)
		cmd.Dir = b.cfg.Root
		cmd.Env = append(os.Environ(), "GOOS="+p.OS, "GOARCH="+p.Arch, "CGO_ENABLED=0", "GOFLAGS=")
		b.log.Info("build", "binary", name, "platform", p)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s for %s: %v\n%s", name, p, err, strings.TrimSpace(string(out)))
		}
		out[name] = path
		b.built = append(b.built, builtBinary{Name: exe, Platform: p, Path: path})
	}
	return out, nil
}
