package main

import (
	"os"
	"path/filepath"
	"runtime"
)

// dataDirs are the default data directories: where `momonga run` keeps a
// person's client, and which client the other commands talk to.
type dataDirs struct {
	Run string // a person's own client
	Use string // the commands' default: the person's client, or the system service's
}

// platform is what the defaults depend on, injected for tests.
type platform struct {
	GOOS   string
	Getenv func(string) string
	Home   string
	Exists func(string) bool
}

// The system service's data directory, as the packages install it.
const (
	systemDataDirUnix = "/var/lib/momonga"
	serviceName       = "momonga"
)

// defaultDataDirs follows the platform: for a person, the XDG data
// directory on Linux (~/.local/share/momonga), Application Support on
// macOS, the local application data on Windows; for the system service,
// /var/lib/momonga or %ProgramData%\momonga. A person who used the client
// before it moved keeps the directory under ~/.config: nothing is left
// behind. Commands other than `run` talk to the person's own client if they
// have one, else to the system service's when one is installed, so that
// `momonga status` works out of the box after a package install.
func defaultDataDirs(p platform) dataDirs {
	if d := p.Getenv("MOMONGA_DATA"); d != "" {
		return dataDirs{Run: d, Use: d}
	}
	var own, legacy, system string
	switch p.GOOS {
	case "windows":
		local := p.Getenv("LocalAppData")
		if local == "" {
			local = filepath.Join(p.Home, "AppData", "Local")
		}
		own, legacy = filepath.Join(local, "momonga"), filepath.Join(p.Getenv("AppData"), "momonga")
		if pd := p.Getenv("ProgramData"); pd != "" {
			system = filepath.Join(pd, "momonga")
		}
	case "darwin", "ios":
		own = filepath.Join(p.Home, "Library", "Application Support", "momonga")
	default:
		data := p.Getenv("XDG_DATA_HOME")
		if !filepath.IsAbs(data) {
			data = filepath.Join(p.Home, ".local", "share")
		}
		own = filepath.Join(data, "momonga")
		config := p.Getenv("XDG_CONFIG_HOME")
		if !filepath.IsAbs(config) {
			config = filepath.Join(p.Home, ".config")
		}
		legacy, system = filepath.Join(config, "momonga"), systemDataDirUnix
	}
	hasClient := func(dir string) bool { return dir != "" && p.Exists(filepath.Join(dir, "host.json")) }
	if !hasClient(own) && legacy != own && hasClient(legacy) {
		own = legacy
	}
	d := dataDirs{Run: own, Use: own}
	if !hasClient(own) && system != "" && p.Exists(system) {
		d.Use = system
	}
	return d
}

func thisPlatform() platform {
	home, _ := os.UserHomeDir()
	return platform{
		GOOS:   runtime.GOOS,
		Getenv: os.Getenv,
		Home:   home,
		Exists: func(p string) bool { _, err := os.Stat(p); return err == nil },
	}
}
