package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportAndAccountSettings runs `team add` with a team's details,
// `user set` and `export --out` against a running project: the export's
// four files are written whole into the directory, with nobody in them
// yet, since nobody has credit.
func TestExportAndAccountSettings(t *testing.T) {
	srv, _ := startOpenProject(t)
	url := srv.ClientURL()
	run := func(args ...string) error { return app().Run(append([]string{"momonga-project"}, args...)) }
	if err := run("user", "add", "--server", url, "--email", "ann@example.org", "ann"); err != nil {
		t.Fatal(err)
	}
	if err := run("team", "add", "--server", url, "--founder", "ann", "--type", "3", "--country", "Japan",
		"--url", "https://example.org/t", "--description", "We crunch.", "crunchers"); err != nil {
		t.Fatal(err)
	}
	if err := run("team", "add", "--server", url, "--url", "javascript:alert(1)", "bad"); err == nil {
		t.Fatal("a team with a javascript: address was made")
	}
	if err := run("user", "set", "--server", url, "--team", "", "--country", "Norway", "--stats-export=false", "ann"); err != nil {
		t.Fatal(err)
	}
	acc := srv.Accounts()
	if len(acc.Users) != 1 || acc.Users[0].Team != "" || len(acc.Teams) != 1 {
		t.Fatalf("accounts: %+v", acc)
	}
	out := filepath.Join(t.TempDir(), "stats")
	if err := run("export", "--server", url, "--out", out); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "host.gz tables.xml team.gz user.gz" {
		t.Fatalf("export wrote %v", names)
	}
	tables, _ := os.ReadFile(filepath.Join(out, "tables.xml"))
	if !strings.Contains(string(tables), "<update_time>") || strings.Contains(string(tables), "nusers_total") {
		t.Fatalf("tables.xml of a project without credit:\n%s", tables)
	}
	if err := run("export", "--server", url); err == nil {
		t.Fatal("export without --out")
	}
}
