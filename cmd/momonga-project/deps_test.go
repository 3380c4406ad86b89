package main

import (
	"flag"
	"testing"

	"github.com/momonga-project/momonga/internal/deptest"
)

var update = flag.Bool("update", false, "rewrite depends.txt from what momonga-project links now")

// TestDependencies pins what the project's binary links (depends.txt).
func TestDependencies(t *testing.T) {
	deptest.Check(t, deptest.Binary{
		Package: deptest.Module + "/cmd/momonga-project",
		File:    "depends.txt",
		Update:  *update,
	})
}
