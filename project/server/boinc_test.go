package server

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBOINCAppsDir: --boinc-apps wins; else DATA/boinc-apps when it
// exists; else the directory the package installs the apps in.
func TestBOINCAppsDir(t *testing.T) {
	data, packaged := t.TempDir(), "/usr/lib/momonga-project/boinc-apps"
	if got := boincAppsDir(BOINC{Dir: data}, packaged); got != packaged {
		t.Errorf("without DATA/boinc-apps: %s, want %s", got, packaged)
	}
	if got := boincAppsDir(BOINC{Dir: data, AppsDir: "/srv/apps"}, packaged); got != "/srv/apps" {
		t.Errorf("with --boinc-apps: %s", got)
	}
	own := filepath.Join(data, "boinc-apps")
	if err := os.Mkdir(own, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := boincAppsDir(BOINC{Dir: data}, packaged); got != own {
		t.Errorf("with DATA/boinc-apps: %s, want %s", got, own)
	}
}
