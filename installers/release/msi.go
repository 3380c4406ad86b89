package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/momonga-project/momonga/installers"
)

// The MSI's fixed identity: Windows upgrades an installed momonga to any
// MSI with the same upgrade code.
const (
	msiUpgradeCode = "8E0D7C1A-3B52-4F6E-9A17-2C4B5D6E7F80"
	msiComponent   = "5A6B7C8D-1E2F-4A3B-8C9D-0E1F2A3B4C5D"
)

// msi builds the Windows installer of the client with wixl (msitools),
// with its worker beside it when one was built (worker != "").
func (b *builder) msi(ctx context.Context, p Platform, exe, worker string) (string, error) {
	wixl, err := exec.LookPath("wixl")
	if err != nil {
		return "", errors.New("the Windows installer is made with wixl, which is not installed: install Debian's wixl package (apt-get install wixl), or build without it (--no-msi)")
	}
	// The cabinet inside keeps the file's time.
	for _, f := range []string{exe, worker} {
		if f == "" {
			continue
		}
		if err := os.Chtimes(f, b.time, b.time); err != nil {
			return "", err
		}
	}
	if worker != "" && filepath.Dir(worker) != filepath.Dir(exe) {
		return "", fmt.Errorf("the worker %s is not beside the client %s: wixl takes both from one directory", worker, exe)
	}
	src, err := installers.Asset("msi/momonga.wxs")
	if err != nil {
		return "", err
	}
	t, err := template.New("wxs").Parse(string(src))
	if err != nil {
		return "", err
	}
	var wxs bytes.Buffer
	// A new version is a new product (MSI's major upgrade); the same
	// version built again is the same one.
	workerName := ""
	if worker != "" {
		workerName = filepath.Base(worker)
	}
	if err := t.Execute(&wxs, map[string]string{
		"ProductCode":        guid("product", b.version, p.Arch),
		"PackageCode":        guid("package", b.version, p.Arch),
		"UpgradeCode":        msiUpgradeCode,
		"ComponentGUID":      msiComponent,
		"Version":            msiVersion(b.version),
		"ProgramFilesFolder": "ProgramFiles64Folder",
		"Exe":                filepath.Base(exe),
		"Worker":             workerName,
	}); err != nil {
		return "", err
	}
	dir := filepath.Join(b.work, "msi")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	wxsPath := filepath.Join(dir, "momonga.wxs")
	if err := os.WriteFile(wxsPath, wxs.Bytes(), 0o644); err != nil {
		return "", err
	}
	name := "momonga_" + b.version + "_windows_" + p.Arch + ".msi"
	out := filepath.Join(b.cfg.Out, name)
	started := time.Now()
	// wixl finds the files the source names from where it runs.
	cmd := exec.CommandContext(ctx, wixl, "-a", "x64", "-o", out, wxsPath)
	cmd.Dir = filepath.Dir(exe)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("wixl: %v\n%s", err, strings.TrimSpace(string(msg)))
	}
	msi, err := os.ReadFile(out)
	if err != nil {
		return "", err
	}
	msi, err = stampSummary(msi, started.Add(-time.Minute), time.Now().Add(time.Minute), b.time, guid("package", b.version, p.Arch))
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return name, os.WriteFile(out, msi, 0o644)
}

// stampSummary makes wixl's output reproducible: wixl writes the time it
// ran into the summary information (created, last saved) and a random
// package code (the revision number). Both are replaced in place, where
// they are typed property values: a FILETIME (type 0x40) within the run,
// and the one 38-character string (type 0x1E) that is a GUID in braces.
func stampSummary(msi []byte, from, to, at time.Time, code string) ([]byte, error) {
	msi = bytes.Clone(msi)
	lo, hi, stamp := filetime(from), filetime(to), filetime(at)
	times := 0
	for i := 0; i+12 <= len(msi); i++ {
		if binary.LittleEndian.Uint32(msi[i:]) != 0x40 {
			continue
		}
		if v := binary.LittleEndian.Uint64(msi[i+4:]); v >= lo && v <= hi {
			binary.LittleEndian.PutUint64(msi[i+4:], stamp)
			times++
		}
	}
	revision := regexp.MustCompile(`\x1e\x00\x00\x00\x27\x00\x00\x00\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}\x00`)
	found := revision.FindAllIndex(msi, -1)
	if times == 0 || len(found) != 1 {
		return nil, fmt.Errorf("the summary information is not where it was expected (%d times, %d package codes): wixl's output changed", times, len(found))
	}
	copy(msi[found[0][0]+8:], "{"+code+"}")
	return msi, nil
}

// filetime is Windows' time: 100 ns since 1601.
func filetime(t time.Time) uint64 {
	return uint64(t.Unix()+11644473600)*1e7 + uint64(t.Nanosecond()/100)
}

// guid derives a GUID from its parts, the same for the same parts.
func guid(parts ...string) string {
	h := sha256.Sum256([]byte("momonga msi\x00" + strings.Join(parts, "\x00")))
	h[6] = h[6]&0x0f | 0x50 // name-based (version 5 layout)
	h[8] = h[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16]))
}

// msiVersion is the version as Windows Installer takes it: three numbers,
// without a pre-release's suffix. Windows upgrades only to a higher version
// (wixl has no same-version upgrades): a pre-release's MSI is removed
// before another of the same version is installed.
var semverCore = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`)

func msiVersion(v string) string {
	m := semverCore.FindStringSubmatch(v)
	if m == nil {
		return "0.0.0"
	}
	return m[1] + "." + m[2] + "." + m[3]
}
