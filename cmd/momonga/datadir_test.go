package main

import (
	"path/filepath"
	"testing"
)

func TestDefaultDataDirs(t *testing.T) {
	type env map[string]string
	cases := []struct {
		name     string
		goos     string
		env      env
		exists   []string
		run, use string
	}{
		{name: "a new person on Linux", goos: "linux", env: env{}, run: "/home/a/.local/share/momonga", use: "/home/a/.local/share/momonga"},
		{name: "XDG_DATA_HOME", goos: "linux", env: env{"XDG_DATA_HOME": "/data/a"}, run: "/data/a/momonga", use: "/data/a/momonga"},
		{name: "a relative XDG_DATA_HOME is ignored", goos: "linux", env: env{"XDG_DATA_HOME": "rel"}, run: "/home/a/.local/share/momonga", use: "/home/a/.local/share/momonga"},
		{name: "a client from before the move stays where it is", goos: "linux", env: env{}, exists: []string{"/home/a/.config/momonga/host.json"},
			run: "/home/a/.config/momonga", use: "/home/a/.config/momonga"},
		{name: "both: the new one wins", goos: "linux", env: env{}, exists: []string{"/home/a/.config/momonga/host.json", "/home/a/.local/share/momonga/host.json"},
			run: "/home/a/.local/share/momonga", use: "/home/a/.local/share/momonga"},
		{name: "the package's service, no client of one's own", goos: "linux", env: env{}, exists: []string{"/var/lib/momonga"},
			run: "/home/a/.local/share/momonga", use: "/var/lib/momonga"},
		{name: "one's own client before the service", goos: "linux", env: env{}, exists: []string{"/var/lib/momonga", "/home/a/.local/share/momonga/host.json"},
			run: "/home/a/.local/share/momonga", use: "/home/a/.local/share/momonga"},
		{name: "MOMONGA_DATA", goos: "linux", env: env{"MOMONGA_DATA": "/srv/m"}, exists: []string{"/var/lib/momonga"}, run: "/srv/m", use: "/srv/m"},
		{name: "macOS", goos: "darwin", env: env{}, run: "/home/a/Library/Application Support/momonga", use: "/home/a/Library/Application Support/momonga"},
		{name: "Windows with the MSI's service", goos: "windows", env: env{"LocalAppData": "/home/a/AppData/Local", "ProgramData": "/ProgramData"},
			exists: []string{"/ProgramData/momonga"}, run: "/home/a/AppData/Local/momonga", use: "/ProgramData/momonga"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			exists := map[string]bool{}
			for _, p := range c.exists {
				exists[filepath.FromSlash(p)] = true
			}
			got := defaultDataDirs(platform{GOOS: c.goos, Home: filepath.FromSlash("/home/a"),
				Getenv: func(k string) string { return filepath.FromSlash(c.env[k]) },
				Exists: func(p string) bool { return exists[p] }})
			if got.Run != filepath.FromSlash(c.run) || got.Use != filepath.FromSlash(c.use) {
				t.Errorf("got run %s, use %s; want run %s, use %s", got.Run, got.Use, c.run, c.use)
			}
		})
	}
}

func TestServiceSpec(t *testing.T) {
	s := serviceSpec("/usr/local/bin/momonga", "", "/home/a/.local/share/momonga")
	if s.Exec != "/usr/local/bin/momonga" || s.DataDir != "/home/a/.local/share/momonga" || s.LogFile != "/home/a/.local/share/momonga/momonga.log" {
		t.Errorf("default: %+v", s)
	}
	if s := serviceSpec("/m", "rel/data", "/d"); !filepath.IsAbs(s.DataDir) {
		t.Errorf("a relative data directory stays relative for a service that starts elsewhere: %+v", s)
	}
}
