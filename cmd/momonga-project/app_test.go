package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/boinc"
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

// TestAppAddSignsForBOINCWithAnOfflineKey: `app add --code-sign-key`
// signs the module and the BOINC apps with a key the server does not hold
// (its data directory has the public half only), and the server's BOINC
// side sends those signatures to a client, which verifies them with the
// key in code_sign_key.
func TestAppAddSignsForBOINCWithAnOfflineKey(t *testing.T) {
	offline, data, boincApps := t.TempDir(), t.TempDir(), t.TempDir()
	if err := boinc.InitCodeSigning(offline); err != nil {
		t.Fatal(err)
	}
	pubText, err := os.ReadFile(filepath.Join(offline, boinc.CodeSignPublicFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, boinc.CodeSignPublicFile), pubText, 0o644); err != nil {
		t.Fatal(err)
	}
	const platform = "x86_64-pc-linux-gnu"
	runner := []byte("#!/bin/sh\n# the BOINC app, as far as this test goes\n")
	if err := os.WriteFile(filepath.Join(boincApps, boinc.RunnerFile(platform)), runner, 0o755); err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	signPub, err := signing.Init(keys)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := server.Embedded(t.TempDir(), "127.0.0.1:0")
	cfg.Trust = server.Trust{Open: true, SigningKey: signPub}
	cfg.BOINC = server.BOINC{Listen: "127.0.0.1:0", Dir: data, AppsDir: boincApps}
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if _, err := os.Stat(filepath.Join(data, boinc.CodeSignPrivateFile)); !os.IsNotExist(err) {
		t.Fatalf("the server made a private key beside the public one: %v", err)
	}

	run := func(args ...string) string {
		t.Helper()
		var out strings.Builder
		a := app()
		a.Writer = &out
		if err := a.Run(append([]string{"momonga-project"}, args...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	primes := filepath.Join("..", "..", "apps", "primes.wasm")
	out := run("app", "add", "--server", srv.ClientURL(), "--key", filepath.Join(keys, signing.PrivateFile),
		"--code-sign-key", filepath.Join(offline, boinc.CodeSignPrivateFile), "--boinc-apps", boincApps, "primes", primes)
	if !strings.Contains(out, "BOINC: signed the module and the BOINC apps for "+platform+"\n") {
		t.Fatalf("app add printed:\n%s", out)
	}
	// Without the key the app goes unsigned for BOINC, and says so.
	if out := run("app", "add", "--server", srv.ClientURL(), "--key", filepath.Join(keys, signing.PrivateFile), "other", primes); !strings.Contains(out, "BOINC: not signed") {
		t.Fatalf("app add without a code-signing key printed:\n%s", out)
	}
	spec := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(spec, []byte(`{"app":"primes","batch":"b","replication":1,"quorum":1,"units":[{"args":["0","10"]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	run("submit", "--server", srv.ClientURL(), "--spec", spec)
	m := regexp.MustCompile(`account key: (\S+)`).FindStringSubmatch(run("user", "add", "--server", srv.ClientURL(), "ann"))
	if m == nil {
		t.Fatal("user add printed no account key")
	}

	req := `<scheduler_request>
<authenticator>` + m[1] + `</authenticator>
<platform_name>` + platform + `</platform_name>
<work_req_seconds>3600</work_req_seconds>
<cpu_req_secs>3600</cpu_req_secs>
<cpu_req_instances>1</cpu_req_instances>
<host_info><host_cpid>0123456789abcdef0123456789abcdef</host_cpid><p_ncpus>1</p_ncpus><p_fpops>1e9</p_fpops><m_nbytes>1e9</m_nbytes><os_name>Linux</os_name></host_info>
</scheduler_request>
`
	resp, err := http.Post(srv.BOINCURL()+"cgi", "text/xml", strings.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var rep struct {
		Messages    []string `xml:"message"`
		CodeSignKey string   `xml:"code_sign_key"`
		Files       []struct {
			Name      string `xml:"name"`
			MD5       string `xml:"md5_cksum"`
			Signature string `xml:"file_signature"`
		} `xml:"file_info"`
		Results []string `xml:"result>name"`
	}
	if err := xml.Unmarshal(body, &rep); err != nil {
		t.Fatalf("reply %s: %v", body, err)
	}
	pub, err := boinc.ParsePublicKey([]byte(strings.TrimSpace(rep.CodeSignKey) + "\n"))
	if err != nil {
		t.Fatalf("code_sign_key in %s: %v", body, err)
	}
	want := map[string]bool{md5Hex(runner): true, md5Hex(prepared(t, primes)): true}
	for _, f := range rep.Files {
		if f.Signature == "" {
			continue // the output's
		}
		if err := boinc.VerifyFile(pub, f.MD5, f.Signature); err != nil {
			t.Errorf("%s: the signature sent does not verify: %v", f.Name, err)
		}
		delete(want, f.MD5)
	}
	if len(rep.Results) != 1 || len(want) != 0 {
		t.Fatalf("reply with %d tasks, files %+v not signed: %s", len(rep.Results), want, body)
	}
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// prepared is the module in path as `app add` publishes it.
func prepared(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err == nil {
		b, err = wu.PrepareModule(b)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}
