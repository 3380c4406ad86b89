package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/project/signing"
)

// TestAppAddPreparesReactors publishes the sample reactors with the real
// command: `app add` exports their mutable globals, which a raw reactor
// lacks, rather than refusing them.
func TestAppAddPreparesReactors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys := t.TempDir()
	pub, err := signing.Init(keys)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(ctx, server.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", Trust: server.Trust{Open: true, SigningKey: pub}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, name := range []string{"mandelr", "mandelc"} {
		args := []string{"momonga-project", "app", "add", "--server", srv.ClientURL(), "--key", filepath.Join(keys, signing.PrivateFile),
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
