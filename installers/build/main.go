// Command build is momonga's release build: from the module's root,
//
//	go run ./installers/build --out dist/
//
// writes the archives for Linux, macOS and Windows on amd64 and arm64 (the
// client's with momonga-worker, its wasmtime engine, where the platform's C
// compiler is here), the BOINC app for every BOINC platform, the deb, rpm
// and apk packages of the client and the project server, the client's MSI
// (with Debian's wixl), an SPDX bill of materials and SHA256SUMS, then the
// sizes of momonga and momonga-worker by platform and what was left out.
// Two builds of one commit write the same bytes.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/momonga-project/momonga/installers/release"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	out := fs.String("out", "dist", "directory to write the release into (emptied first)")
	version := fs.String("version", "", "version of the release (default: the commit's tag, or 0.1.0-dev.N)")
	platforms := fs.String("platforms", "", "comma-separated OS/ARCH to build (default: linux, darwin and windows on amd64 and arm64)")
	formats := fs.String("formats", "", "comma-separated Linux package formats (default: deb,rpm,apk)")
	packages := fs.String("packages", "", "comma-separated Linux packages to make (default: momonga,momonga-project)")
	noPackages := fs.Bool("no-packages", false, "archives only, no Linux packages")
	noMSI := fs.Bool("no-msi", false, "no Windows installer (it needs Debian's wixl)")
	verbose := fs.Bool("verbose", false, "say what is being built")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := release.Config{Root: ".", Out: *out, Version: *version, NoPackages: *noPackages, NoMSI: *noMSI,
		Formats: split(*formats), Packages: split(*packages)}
	for _, s := range split(*platforms) {
		p, err := release.ParsePlatform(s)
		if err != nil {
			return err
		}
		cfg.Platforms = append(cfg.Platforms, p)
	}
	// What is left out (a worker without its C compiler) is said always.
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := release.Build(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("momonga %s (commit %.12s, %s) in %s:\n", res.Version, res.Commit, res.Time.Format("2006-01-02 15:04:05Z"), filepath.Clean(*out))
	sums, err := os.ReadFile(filepath.Join(*out, release.SumsFile))
	if err != nil {
		return err
	}
	fmt.Print(string(sums))
	fmt.Print(summary(res))
	return nil
}

// summary is the volunteer's binaries' sizes by platform and what was left
// out.
func summary(res release.Result) string {
	var b strings.Builder
	size := map[string]int64{}
	var platforms []release.Platform
	for _, bin := range res.Binaries {
		name := strings.TrimSuffix(bin.Name, ".exe")
		if name != "momonga" && name != "momonga-worker" {
			continue
		}
		if !slices.Contains(platforms, bin.Platform) {
			platforms = append(platforms, bin.Platform)
		}
		size[bin.Platform.String()+" "+name] = bin.Size
	}
	if len(platforms) > 0 {
		fmt.Fprintf(&b, "\nsizes (bytes):\n%-15s %12s %16s\n", "platform", "momonga", "momonga-worker")
		for _, p := range platforms {
			worker := "-"
			if n, ok := size[p.String()+" momonga-worker"]; ok {
				worker = commas(n)
			}
			fmt.Fprintf(&b, "%-15s %12s %16s\n", p, commas(size[p.String()+" momonga"]), worker)
		}
	}
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "left out: %s\n", n)
	}
	return b.String()
}

// commas writes n with thousands separated: 18,346,110.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
