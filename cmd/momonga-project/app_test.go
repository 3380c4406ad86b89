package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/project/signing"
	wu "github.com/momonga-project/momonga/workunits"
)

// TestAppAddPreparesReactors publishes the sample reactors with the real
// command: `app add` exports their mutable globals, which a raw reactor
// lacks, rather than refusing them.
func TestAppAddPreparesReactors(t *testing.T) {
	srv, key := startOpenProject(t)
	for _, name := range []string{"mandelr", "mandelc"} {
		args := []string{"momonga-project", "app", "add", "--server", srv.ClientURL(), "--key", key,
			name, filepath.Join("..", "..", "apps", name+".wasm")}
		if err := app().Run(args); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	st := srv.Status()
	if len(st.Apps) != 2 {
		t.Fatalf("apps published: %+v", st.Apps)
	}
}

// TestResultsManifestNameClash: a work unit named like the manifest would
// be overwritten by it, so `results` refuses before it writes anything and
// says how to name the manifest otherwise; with --manifest it writes both.
func TestResultsManifestNameClash(t *testing.T) {
	srv, key := startOpenProject(t)
	url := srv.ClientURL()
	run := func(args ...string) error { return app().Run(append([]string{"momonga-project"}, args...)) }
	if err := run("app", "add", "--server", url, "--key", key, "primes", filepath.Join("..", "..", "apps", "primes.wasm")); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(spec, []byte(`{"app":"primes","batch":"b","units":[{"name":"manifest.json","args":["10"]},{"name":"u2","args":["20"]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run("submit", "--server", url, "--spec", spec); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "out")
	err := run("results", "--server", url, "--out", out, "b")
	if err == nil || !strings.Contains(err.Error(), "--manifest") {
		t.Fatalf("results with a unit named manifest.json: %v, want a refusal naming --manifest", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the refused results wrote %s (%v)", out, err)
	}
	if err := run("results", "--server", url, "--out", out, "--manifest", "index.json", "b"); err != nil {
		t.Fatal(err)
	}
	var m wu.ResultsReply
	b, err := os.ReadFile(filepath.Join(out, "index.json"))
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil || m.Batch != "b" || len(m.Units) != 2 {
		t.Errorf("manifest index.json: %+v, %v", m, err)
	}
	if err := run("results", "--server", url, "--out", out, "--manifest", "../x", "b"); err == nil {
		t.Error("--manifest ../x was taken")
	}
}

// startOpenProject starts an open project server with a signing key of its
// own, stopped when the test ends, and returns it and the key's file.
func startOpenProject(t *testing.T) (*server.Server, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys := t.TempDir()
	pub, err := signing.Init(keys)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Embedded(t.TempDir(), "127.0.0.1:0")
	cfg.Trust = server.Trust{Open: true, SigningKey: pub}
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, filepath.Join(keys, signing.PrivateFile)
}
