package main

import (
	"flag"
	"testing"

	"github.com/momonga-project/momonga/internal/deptest"
)

var update = flag.Bool("update", false, "rewrite depends.txt from what momonga links now")

// TestDependencies pins what the volunteer's binary links (depends.txt):
// it runs on other people's machines, so nothing of the project's side
// may come in with an import, and least of all a NATS server.
func TestDependencies(t *testing.T) {
	deptest.Check(t, deptest.Binary{
		Package: deptest.Module + "/cmd/momonga",
		File:    "depends.txt",
		Forbidden: map[string]string{
			deptest.Module + "/project/":      "the volunteer's client links nothing of the project's side (DESIGN §2)",
			"github.com/nats-io/nats-server/": "a NATS server's packages in the client wake it every second and double its size",
			"github.com/nats-io/jwt/":         "the project issues credentials; the client only presents them",
			"github.com/bytecodealliance/":    "the daemon stays pure Go; the faster engine (cgo) lives in momonga-worker only",
		},
		Update: *update,
	})
}
