package release

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/momonga-project/momonga/installers"
)

// entry is a file in an archive.
type entry struct {
	name string
	body []byte
	mode fs.FileMode
}

// archive puts a platform's binaries, with what installs them as a service
// there, in momonga_VERSION_OS_ARCH.tar.gz (.zip for Windows), under a
// directory of the same name.
func (b *builder) archive(p Platform, bins map[string]string) (string, error) {
	base := "momonga_" + b.version + "_" + p.OS + "_" + p.Arch
	var entries []entry
	for _, path := range bins {
		body, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		entries = append(entries, entry{name: filepath.Base(path), body: body, mode: 0o755})
	}
	if p.OS == "darwin" {
		plist, err := installers.LaunchAgent(installers.ServiceSpec{Exec: "/usr/local/bin/momonga"})
		if err != nil {
			return "", err
		}
		entries = append(entries, entry{name: installers.LaunchdLabel + ".plist", body: plist, mode: 0o644})
	}
	readme, err := installers.ArchiveReadme(p.OS)
	if err != nil {
		return "", err
	}
	entries = append(entries, entry{name: "README.txt", body: readme, mode: 0o644})
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	var out bytes.Buffer
	var file string
	if p.OS == "windows" {
		file = base + ".zip"
		if err := b.writeZip(&out, base, entries); err != nil {
			return "", err
		}
	} else {
		file = base + ".tar.gz"
		if err := b.writeTarGz(&out, base, entries); err != nil {
			return "", err
		}
	}
	return file, os.WriteFile(filepath.Join(b.cfg.Out, file), out.Bytes(), 0o644)
}

func (b *builder) writeTarGz(w *bytes.Buffer, dir string, entries []entry) error {
	// No name and no time in the gzip header: the same files give the
	// same bytes.
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	hdr := func(name string, mode fs.FileMode, size int64, typ byte) *tar.Header {
		return &tar.Header{Name: name, Mode: int64(mode), Size: size, Typeflag: typ, ModTime: b.time,
			Uname: "root", Gname: "root", Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(dir+"/", 0o755, 0, tar.TypeDir)); err != nil {
		return err
	}
	for _, e := range entries {
		if err := tw.WriteHeader(hdr(dir+"/"+e.name, e.mode, int64(len(e.body)), tar.TypeReg)); err != nil {
			return err
		}
		if _, err := tw.Write(e.body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func (b *builder) writeZip(w *bytes.Buffer, dir string, entries []entry) error {
	zw := zip.NewWriter(w)
	for _, e := range entries {
		h := &zip.FileHeader{Name: dir + "/" + e.name, Method: zip.Deflate, Modified: b.time}
		h.SetMode(e.mode)
		f, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := f.Write(e.body); err != nil {
			return err
		}
	}
	return zw.Close()
}

// boincAppsArchive puts the BOINC app of every BOINC platform in
// momonga-boinc-apps_VERSION.tar.gz, for a project served without the
// momonga-project package: unpacked into DATA/boinc-apps, or named by
// serve's --boinc-apps.
func (b *builder) boincAppsArchive(apps map[string]string) (string, error) {
	base := "momonga-boinc-apps_" + b.version
	var entries []entry
	for name, path := range apps {
		body, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		entries = append(entries, entry{name: name, body: body, mode: 0o755})
	}
	readme, err := installers.Asset("archive/boinc-apps.txt")
	if err != nil {
		return "", err
	}
	entries = append(entries, entry{name: "README.txt", body: readme, mode: 0o644})
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var out bytes.Buffer
	if err := b.writeTarGz(&out, base, entries); err != nil {
		return "", err
	}
	file := base + ".tar.gz"
	return file, os.WriteFile(filepath.Join(b.cfg.Out, file), out.Bytes(), 0o644)
}
