package release

import (
	"slices"
	"testing"

	"github.com/momonga-project/momonga/installers"
	"github.com/momonga-project/momonga/project/boinc"
	"github.com/momonga-project/momonga/project/server"
)

// TestBOINCAppsWhereServeLooks: the release builds the BOINC app for every
// platform the project's BOINC side serves, under the names it serves, and
// the package installs them where serve looks without --boinc-apps.
func TestBOINCAppsWhereServeLooks(t *testing.T) {
	var names []string
	for _, bp := range boincPlatforms {
		names = append(names, bp.Name)
		if got, want := boincAppName(bp.Name), boinc.RunnerFile(bp.Name); got != want {
			t.Errorf("%s: the release names it %s, the BOINC side serves %s", bp.Name, got, want)
		}
	}
	if !slices.Equal(names, boinc.Platforms) {
		t.Errorf("release builds the BOINC app for %v, the BOINC side serves %v", names, boinc.Platforms)
	}
	if installers.BOINCAppsDir != server.PackagedBOINCApps {
		t.Errorf("the package installs the BOINC apps in %s, serve looks in %s", installers.BOINCAppsDir, server.PackagedBOINCApps)
	}
	i := slices.IndexFunc(installers.Packages(), func(p installers.Package) bool { return p.Name == "momonga-project" })
	if i < 0 || installers.Packages()[i].BOINCApps != installers.BOINCAppsDir {
		t.Error("the momonga-project package does not carry the BOINC apps")
	}
}
