package main

import (
	"flag"
	"testing"

	"github.com/momonga-project/momonga/internal/deptest"
)

var update = flag.Bool("update", false, "rewrite depends.txt from what momonga-boinc-app links now")

// TestDependencies pins what the BOINC app links (depends.txt): it runs on
// BOINC volunteers' machines, under a BOINC client, and talks to nothing
// but that client.
func TestDependencies(t *testing.T) {
	deptest.Check(t, deptest.Binary{
		Package: deptest.Module + "/cmd/momonga-boinc-app",
		File:    "depends.txt",
		Forbidden: map[string]string{
			deptest.Module + "/project/": "the BOINC app links nothing of the project's side (DESIGN §2)",
			"github.com/nats-io/":        "the BOINC app talks to its BOINC client only, never to NATS",
		},
		Update: *update,
	})
}
