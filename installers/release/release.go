// Package release is momonga's release build (DESIGN §2, `go run
// ./installers/build`): the binaries for every platform volunteers use,
// archives of them (the client's with its worker on wasmtime where a C
// compiler for the platform is here), the BOINC app for every BOINC
// platform, the Linux packages (deb, rpm, apk, made with nfpm as a
// library from installers.Packages), the Windows MSI (wixl), a software
// bill of materials and SHA256SUMS over all of it.
//
// Two builds of one commit are byte for byte the same: binaries are built
// with -trimpath and no build id, and every time stamp written (archive
// entries, package headers, the MSI's summary) is the commit's time.
package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/momonga-project/momonga/installers"
)

// Platform is an operating system and processor the release is built for.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// ParsePlatform reads "linux/amd64".
func ParsePlatform(s string) (Platform, error) {
	os, arch, ok := strings.Cut(s, "/")
	if !ok || os == "" || arch == "" {
		return Platform{}, fmt.Errorf("platform %q: write it OS/ARCH, e.g. linux/amd64", s)
	}
	return Platform{os, arch}, nil
}

// Platforms are those of a full release.
var Platforms = []Platform{
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"windows", "amd64"}, {"windows", "arm64"},
}

// Formats of the Linux packages.
var Formats = []string{"deb", "rpm", "apk"}

// Config is what to build.
type Config struct {
	// Root is the module's directory; Out where the artifacts go (made
	// empty first: only this build's files are summed).
	Root, Out string
	// Version is the release's version (semver, v optional); "" = from
	// the commit: its tag, or 0.1.0-dev.N.
	Version string
	// Time stamps everything written; zero = the commit's time.
	Time      time.Time
	Platforms []Platform // default Platforms
	Formats   []string   // Linux packages; default Formats; none with NoPackages
	// Packages are the names of the Linux packages to make (default all
	// of installers.Packages).
	Packages   []string
	NoPackages bool
	NoMSI      bool
	Logger     *slog.Logger // told what is being built; nil = nothing
}

// Artifact is one file the build wrote in Out.
type Artifact struct {
	Name   string // file name in Out
	SHA256 string
}

// Result is what a build made.
type Result struct {
	Version   string
	Time      time.Time
	Commit    string
	Artifacts []Artifact // sorted by name; SHA256SUMS itself not among them
	// Binaries are the programs built, in the order built.
	Binaries []Binary
	// Notes say what was left out and why (a worker without its C
	// compiler).
	Notes []string
}

// Binary is one program built for one platform.
type Binary struct {
	Name     string // file name: momonga, momonga-worker.exe, ...
	Platform Platform
	Size     int64
}

// SumsFile lists the artifacts' SHA-256 sums, as sha256sum(1) prints them.
const SumsFile = "SHA256SUMS"

// Build runs the release build.
func Build(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Root == "" {
		cfg.Root = "."
	}
	if len(cfg.Platforms) == 0 {
		cfg.Platforms = Platforms
	}
	if len(cfg.Formats) == 0 {
		cfg.Formats = Formats
	}
	var res Result
	commit, commitTime, err := describe(ctx, cfg.Root)
	if err != nil {
		return res, err
	}
	res.Commit = commit.hash
	if cfg.Time.IsZero() {
		cfg.Time = commitTime
	}
	res.Time = cfg.Time.UTC()
	if cfg.Version == "" {
		cfg.Version = commit.version
	}
	res.Version = strings.TrimPrefix(cfg.Version, "v")
	if cfg.Out, err = filepath.Abs(cfg.Out); err != nil {
		return res, err
	}
	if err := os.RemoveAll(cfg.Out); err != nil {
		return res, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return res, err
	}
	work, err := os.MkdirTemp("", "momonga-release-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(work)

	b := &builder{cfg: cfg, version: res.Version, time: res.Time, work: work, log: cfg.Logger}
	pkgs, err := b.packages()
	if err != nil {
		return res, err
	}
	var names []string
	worker := slices.ContainsFunc(pkgs, func(p installers.Package) bool { return p.Worker })
	var boincApps map[string]string
	if slices.ContainsFunc(pkgs, func(p installers.Package) bool { return p.BOINCApps != "" }) {
		if boincApps, err = b.boincApps(ctx); err != nil {
			return res, err
		}
		name, err := b.boincAppsArchive(boincApps)
		if err != nil {
			return res, err
		}
		names = append(names, name)
	}
	for _, p := range cfg.Platforms {
		bins, err := b.binaries(ctx, p, binariesOf(pkgs), worker)
		if err != nil {
			return res, err
		}
		arch, err := b.archive(p, bins)
		if err != nil {
			return res, err
		}
		names = append(names, arch)
		if p.OS == "linux" && !cfg.NoPackages {
			for _, pkg := range pkgs {
				for _, format := range cfg.Formats {
					name, err := b.linuxPackage(pkg, format, p, bins, boincApps)
					if err != nil {
						return res, err
					}
					names = append(names, name)
				}
			}
		}
		if p.OS == "windows" && p.Arch == "amd64" && !cfg.NoMSI {
			name, err := b.msi(ctx, p, bins["momonga"], bins[installers.WorkerBinary])
			if err != nil {
				return res, err
			}
			names = append(names, name)
		}
	}
	for _, bin := range b.built {
		st, err := os.Stat(bin.Path)
		if err != nil {
			return res, err
		}
		res.Binaries = append(res.Binaries, Binary{Name: bin.Name, Platform: bin.Platform, Size: st.Size()})
	}
	res.Notes = b.notes
	sbom, err := b.sbom(commit.hash)
	if err != nil {
		return res, err
	}
	names = append(names, sbom)
	sort.Strings(names)
	var sums strings.Builder
	for _, n := range names {
		sum, err := fileSHA256(filepath.Join(cfg.Out, n))
		if err != nil {
			return res, err
		}
		res.Artifacts = append(res.Artifacts, Artifact{Name: n, SHA256: sum})
		fmt.Fprintf(&sums, "%s  %s\n", sum, n)
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, SumsFile), []byte(sums.String()), 0o644); err != nil {
		return res, err
	}
	return res, nil
}

// builder holds one build's settings and what it built.
type builder struct {
	cfg     Config
	version string
	time    time.Time
	work    string
	log     *slog.Logger
	built   []builtBinary
	notes   []string
}

type commitInfo struct{ hash, version string }

// describe finds the commit built, its time and the version it gets by
// default: the tag on it (v1.2.3), or 0.1.0-dev.N where N counts the
// commits, so that every later commit's packages upgrade an earlier one's.
func describe(ctx context.Context, root string) (commitInfo, time.Time, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
			}
			return "", fmt.Errorf("git %s: %w (the release build reads the commit to build from git)", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	out, err := git("log", "-1", "--format=%H %ct")
	if err != nil {
		return commitInfo{}, time.Time{}, err
	}
	hash, ct, _ := strings.Cut(out, " ")
	secs, err := strconv.ParseInt(ct, 10, 64)
	if err != nil {
		return commitInfo{}, time.Time{}, fmt.Errorf("commit time %q: %w", ct, err)
	}
	c := commitInfo{hash: hash}
	if tag, err := git("describe", "--tags", "--exact-match", "--match", "v[0-9]*"); err == nil {
		c.version = tag
	} else {
		n, err := git("rev-list", "--count", "HEAD")
		if err != nil {
			return c, time.Time{}, err
		}
		c.version = "0.1.0-dev." + n
	}
	return c, time.Unix(secs, 0).UTC(), nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
