package release

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/apk" // registers the apk packager
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager

	"github.com/momonga-project/momonga/installers"
)

// Maintainer is who the packages name as their maintainer.
const Maintainer = "momonga project <momonga@localhost>"

// linuxPackage makes one package in one format for one architecture.
// The client's package carries the worker built for the platform, if any;
// the server's the BOINC apps for every BOINC platform (boincApps).
func (b *builder) linuxPackage(pkg installers.Package, format string, p Platform, bins, boincApps map[string]string) (string, error) {
	packager, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	stage := filepath.Join(b.work, "stage", pkg.Name, format)
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return "", err
	}
	info := &nfpm.Info{
		Name:        pkg.Name,
		Arch:        p.Arch,
		Platform:    "linux",
		Version:     b.version,
		Release:     "1",
		Section:     "net",
		Priority:    "optional",
		Maintainer:  Maintainer,
		Description: pkg.Description,
		Vendor:      "momonga project",
		License:     "see the project's repository",
		MTime:       b.time,
	}
	info.RPM.BuildHost = "momonga-release"
	info.RPM.Summary = pkg.Description
	program := func(src, dst string) {
		info.Contents = append(info.Contents, &files.Content{Source: src, Destination: dst,
			FileInfo: &files.ContentFileInfo{Mode: 0o755, MTime: b.time}})
	}
	for _, name := range pkg.Binaries {
		program(bins[name], "/usr/bin/"+name)
	}
	// Beside the client, where it looks for its worker.
	if worker := bins[installers.WorkerBinary]; pkg.Worker && worker != "" {
		program(worker, "/usr/bin/"+installers.WorkerBinary)
	}
	if pkg.BOINCApps != "" {
		for _, name := range slices.Sorted(maps.Keys(boincApps)) {
			program(boincApps[name], path.Join(pkg.BOINCApps, name))
		}
	}
	for _, f := range pkg.Files {
		body, err := installers.Asset(f.Asset)
		if err != nil {
			return "", err
		}
		src := filepath.Join(stage, filepath.Base(f.Asset))
		if err := os.WriteFile(src, body, 0o644); err != nil {
			return "", err
		}
		c := &files.Content{Source: src, Destination: f.Dst, FileInfo: &files.ContentFileInfo{Mode: f.Mode, MTime: b.time}}
		if f.Config {
			c.Type = files.TypeConfigNoReplace
		}
		info.Contents = append(info.Contents, c)
	}
	script := func(phase, def string) (string, error) {
		body, err := pkg.Script(phase, def)
		if err != nil {
			return "", err
		}
		path := filepath.Join(stage, phase+"-"+def+".sh")
		if err := os.WriteFile(path, body, 0o755); err != nil {
			return "", err
		}
		// The apk takes its scripts' times from the files.
		return path, os.Chtimes(path, b.time, b.time)
	}
	for _, s := range []struct {
		dst          *string
		phase, deflt string
	}{
		{&info.Scripts.PreInstall, installers.PreInstall, "install"},
		{&info.Scripts.PostInstall, installers.PostInstall, "install"},
		{&info.Scripts.PreRemove, installers.PreRemove, "remove"},
		{&info.Scripts.PostRemove, installers.PostRemove, "remove"},
		{&info.APK.Scripts.PreUpgrade, installers.PreInstall, "upgrade"},
		{&info.APK.Scripts.PostUpgrade, installers.PostInstall, "upgrade"},
	} {
		if *s.dst, err = script(s.phase, s.deflt); err != nil {
			return "", err
		}
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", fmt.Errorf("%s %s: %w", pkg.Name, format, err)
	}
	var out bytes.Buffer
	if err := packager.Package(info, &out); err != nil {
		return "", fmt.Errorf("%s %s for %s: %w", pkg.Name, format, p, err)
	}
	name := packager.ConventionalFileName(info)
	return name, os.WriteFile(filepath.Join(b.cfg.Out, name), out.Bytes(), 0o644)
}
