package main

import (
	"testing"

	"github.com/momonga-project/momonga/installers/release"
)

// TestSummary: the client's and its worker's sizes by platform, "-" where
// no worker was built, and what was left out.
func TestSummary(t *testing.T) {
	amd, win, mac := release.Platform{OS: "linux", Arch: "amd64"}, release.Platform{OS: "windows", Arch: "amd64"}, release.Platform{OS: "darwin", Arch: "arm64"}
	got := summary(release.Result{
		Binaries: []release.Binary{
			{Name: "momonga-boinc-app_x86_64-pc-linux-gnu", Platform: amd, Size: 5},
			{Name: "momonga", Platform: amd, Size: 18346110},
			{Name: "momonga-project", Platform: amd, Size: 40000000},
			{Name: "momonga-worker", Platform: amd, Size: 30814904},
			{Name: "momonga.exe", Platform: win, Size: 17852928},
			{Name: "momonga-worker.exe", Platform: win, Size: 33526272},
			{Name: "momonga", Platform: mac, Size: 999},
		},
		Notes: []string{"darwin/arm64: no momonga-worker (no C cross compiler for darwin/arm64 from linux/amd64): its workers run wazero"},
	})
	want := `
sizes (bytes):
platform             momonga   momonga-worker
linux/amd64       18,346,110       30,814,904
windows/amd64     17,852,928       33,526,272
darwin/arm64             999                -
left out: darwin/arm64: no momonga-worker (no C cross compiler for darwin/arm64 from linux/amd64): its workers run wazero
`
	if got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
}
