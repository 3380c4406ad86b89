package installers

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"strings"
	"text/template"
)

//go:embed systemd scripts launchd msi archive
var assets embed.FS

// A Package is one Linux package: what it installs and the system user its
// service runs as. Adding a binary (a worker, say) to a package is one more
// entry in Binaries.
type Package struct {
	Name        string
	Description string
	// Binaries are the programs it installs in /usr/bin, by the name of
	// their cmd/ directory.
	Binaries []string
	// Worker: the package also installs WorkerBinary in /usr/bin, beside
	// the client, where the client looks for it, for the architectures
	// whose C compiler the release build has (it needs cgo); elsewhere the
	// client's own workers run wazero.
	Worker bool
	// BOINCApps is the directory it installs the BOINC app in, built for
	// every BOINC platform ("" for none).
	BOINCApps string
	// Files are the other files: units, configuration.
	Files []File
	// User is the service's system user (and group); DataDir its data.
	User    string
	DataDir string
	Unit    string
	// ExtraGroups are groups the service user joins when they exist.
	ExtraGroups []string
	// PersonGroup: the person installing the package joins the user's
	// group, to talk to the service without sudo.
	PersonGroup bool
	// FirstStart is printed after the first install.
	FirstStart string
}

// A File is a file of a package that is not a binary.
type File struct {
	Asset  string // path in this package's assets
	Dst    string
	Mode   fs.FileMode
	Config bool // the administrator's to edit: an upgrade keeps their changes
}

// WorkerBinary is the client's worker with the faster engine
// (cmd/momonga-worker built with -tags wasmtime).
const WorkerBinary = "momonga-worker"

// BOINCAppsDir is where the momonga-project package installs the BOINC app
// (cmd/momonga-boinc-app, one per BOINC platform); serve takes its apps
// from there when the project's data directory has none.
const BOINCAppsDir = "/usr/lib/momonga-project/boinc-apps"

// Packages are the Linux packages: the volunteer client and the project
// server.
func Packages() []Package {
	return []Package{
		{
			Name:        "momonga",
			Description: "momonga volunteer computing client: gives this machine's idle time to science projects",
			Binaries:    []string{"momonga"},
			Worker:      true,
			Files:       []File{{Asset: "systemd/momonga.service", Dst: "/usr/lib/systemd/system/momonga.service", Mode: 0o644}},
			User:        "momonga",
			DataDir:     "/var/lib/momonga",
			Unit:        "momonga.service",
			ExtraGroups: []string{"input"},
			PersonGroup: true,
			FirstStart:  "momonga: the client runs and waits: attach it to a project with `momonga attach URL --account-key KEY`",
		},
		{
			Name:        "momonga-project",
			Description: "momonga project server: runs a volunteer computing project (scheduler, gateway, stats)",
			Binaries:    []string{"momonga-project"},
			BOINCApps:   BOINCAppsDir,
			Files: []File{
				{Asset: "systemd/momonga-project.service", Dst: "/usr/lib/systemd/system/momonga-project.service", Mode: 0o644},
				{Asset: "systemd/serve.env", Dst: "/etc/momonga-project/serve.env", Mode: 0o644, Config: true},
			},
			User:       "momonga-project",
			DataDir:    "/var/lib/momonga-project",
			Unit:       "momonga-project.service",
			FirstStart: "momonga-project: the service makes a new project in /var/lib/momonga-project at its first start; its options are in /etc/momonga-project/serve.env",
		},
	}
}

// Asset is one of the files above, as it is installed.
func Asset(name string) ([]byte, error) { return assets.ReadFile(name) }

// Script phases: when a package manager runs a maintainer script.
const (
	PreInstall  = "preinst"
	PostInstall = "postinst"
	PreRemove   = "prerm"
	PostRemove  = "postrm"
)

// Script is the maintainer script of a phase. Every package manager runs the
// same script, which reads its arguments; def is the action taken when
// there are none (apk): "install", "upgrade" or "remove".
func (p Package) Script(phase, def string) ([]byte, error) {
	t, err := template.New(phase).Funcs(template.FuncMap{"sh": shellQuote}).ParseFS(assets, "scripts/common.sh", "scripts/"+phase+".sh")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	data := struct {
		Package
		Default string
	}{p, def}
	if err := t.ExecuteTemplate(&b, phase+".sh", data); err != nil {
		return nil, fmt.Errorf("%s %s script: %w", p.Name, phase, err)
	}
	return b.Bytes(), nil
}

// shellQuote makes s one word of a shell's command line, taken literally.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
