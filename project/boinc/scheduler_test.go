package boinc

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/project/sched"
	wu "github.com/momonga-project/momonga/workunits"
)

func TestMasterPageNamesTheScheduler(t *testing.T) {
	r := newRig(t, rigConfig{})
	code, page := r.get(r.url, nil)
	if code != 200 {
		t.Fatalf("master page: HTTP %d", code)
	}
	for _, want := range []string{`<link rel="boinc_scheduler" href="` + r.url + `cgi">`, "<scheduler>" + r.url + "cgi</scheduler>"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("master page lacks %s:\n%s", want, page)
		}
	}
}

// A BOINC host attaches with its user's account key, gets signed app files
// and tasks, downloads them, uploads its output and reports it; the
// scheduler records the result as any host's.
func TestBOINCHostComputesLikeAnyHost(t *testing.T) {
	r := newRig(t, rigConfig{})
	key := r.user("ann")
	r.primes("b1", 1, [2]int{0, 100}, [2]int{100, 200})
	c := &client{auth: key, cpid: "0123456789abcdef0123456789abcdef"}

	rep := r.rpc(c, true, nil, nil)
	if len(rep.Messages) > 0 && rep.RequestDelay > 60 {
		t.Fatalf("refused: %v", rep.Messages)
	}
	if c.hostID == 0 || rep.UserName != "ann" {
		t.Fatalf("no host id or user in the reply: %+v", rep)
	}
	pub, err := ParsePublicKey([]byte(strings.TrimSpace(rep.CodeSignKey) + "\n"))
	if err != nil || !pub.Equal(&r.key.PublicKey) {
		t.Fatalf("code-signing key in the reply: %v", err)
	}
	if len(rep.Results) != 2 || len(rep.WorkUnits) != 2 || len(rep.Versions) != 1 || len(rep.Apps) != 1 {
		t.Fatalf("want 2 tasks of one app version, got %d results, %d units, %d versions, %d apps",
			len(rep.Results), len(rep.WorkUnits), len(rep.Versions), len(rep.Apps))
	}
	v := rep.Versions[0]
	if v.App != "primes" || v.Platform != testPlatform || len(v.Files) != 2 || v.Files[1].Open != wu.BOINCModuleFile {
		t.Fatalf("app version: %+v", v)
	}
	files := map[string]int{}
	for i, f := range rep.Files {
		files[f.Name] = i
	}
	for _, ref := range v.Files {
		f := rep.Files[files[ref.Name]]
		if f.Signature == "" {
			t.Fatalf("app file %s is not signed", ref.Name)
		}
		code, b := r.get(f.URL, nil)
		if code != 200 || int64(len(b)) != f.NBytes || md5Hex(b) != f.MD5 {
			t.Fatalf("download %s: HTTP %d, %d bytes (want %d), md5 %s (want %s)", f.URL, code, len(b), f.NBytes, md5Hex(b), f.MD5)
		}
		if err := VerifyFile(pub, md5Hex(b), f.Signature); err != nil {
			t.Fatalf("signature of %s does not verify: %v", ref.Name, err)
		}
	}
	module := rep.Files[files[v.Files[1].Name]]
	if code, b := r.get(module.URL, map[string]string{"Range": "bytes=100-"}); code != 206 || string(b) != string(apps.Primes[100:]) {
		t.Fatalf("ranged download: HTTP %d, %d bytes", code, len(b))
	}
	task, err := wu.ParseBOINCTask(strings.Fields(rep.WorkUnits[0].CommandLine))
	if err != nil || task.App != "primes" || len(task.Args) != 2 || task.WorkUnit != rep.WorkUnits[0].Name {
		t.Fatalf("task in the command line: %+v, %v", task, err)
	}

	// The host uploads its outputs (the second one in two parts) and reports.
	outs := map[string][]byte{rep.Results[0].Name: []byte("25\n"), rep.Results[1].Name: []byte("21\n")}
	var reports []string
	for i, res := range rep.Results {
		f := rep.Files[files[res.File]]
		sig := strings.TrimSpace(f.XMLSig)
		out := outs[res.Name]
		if q := r.sizeQuery(res.File); q.Status != 0 || q.FileSize != 0 {
			t.Fatalf("size query before upload: %+v", q)
		}
		offset := int64(0)
		if i == 1 {
			// The connection breaks after the first byte: the upload goes on
			// from where the server stands.
			if u := r.uploadPart(res.File, sig, f.MaxBytes, out, 0, 1); u.Status != 1 {
				t.Fatalf("cut upload: %+v", u)
			}
			if offset = r.sizeQuery(res.File).FileSize; offset != 1 {
				t.Fatalf("size after a cut upload: %d", offset)
			}
		}
		if u := r.upload(res.File, sig, f.MaxBytes, out, offset); u.Status != 0 {
			t.Fatalf("upload %s: %+v", res.File, u)
		}
		reports = append(reports, reportXML(res.Name, 0, out))
	}
	rep = r.rpc(c, false, reports, nil)
	if len(rep.Acks) != 2 || len(rep.Messages) != 0 {
		t.Fatalf("report: acks %v, messages %v", rep.Acks, rep.Messages)
	}
	res, err := peerDirectory{r.peer}.Results(wu.ResultsQuery{V: 1, Batch: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range res.Units {
		b, _ := r.blobs.Get(context.Background(), u.Output)
		if u.State != wu.WorkUnitValid || (string(b) != "25\n" && string(b) != "21\n") {
			t.Fatalf("unit %s: %s, output %q", u.ID, u.State, b)
		}
	}
	st := peerDirectory{r.peer}.Status()
	h := findHost(st, "h"+strconv.FormatInt(c.hostID, 10))
	if h == nil || h.Valid != 2 || h.Info.CPUModel != "AuthenticAMD AMD EPYC & friends" || h.Info.OS != "linux" || h.Info.Arch != "amd64" {
		t.Fatalf("the BOINC host in the status: %+v", h)
	}
}

// TestOnlyStoredSignaturesAreSent: the BOINC side holds the code-signing
// public key only (the private one may be offline) and sends the
// signatures an app was added with. A file whose stored signature is by
// another key, or that has none, is not sent, and the log says how to sign
// it; adding the app again signed, as a project whose apps were added
// before code signatures must, brings the work.
func TestOnlyStoredSignaturesAreSent(t *testing.T) {
	r := newRig(t, rigConfig{})
	c := &client{auth: r.user("ann"), cpid: "feed"}
	r.rpc(c, false, nil, nil)

	// Signed by another key: the runner is refused before any task is
	// assigned, so nothing changes.
	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := SignApp(other, apps.Primes, r.runners)
	if err != nil {
		t.Fatal(err)
	}
	r.addApp("primes", apps.Primes, forged)
	r.submit("primes", "b1", 1, [2]int{0, 100})
	before := r.stateOf()
	rep := r.rpc(c, true, nil, nil)
	if len(rep.Results) != 0 || len(rep.Files) != 0 || !slices.ContainsFunc(rep.Messages, func(m string) bool { return strings.Contains(m, "not signed yet") }) {
		t.Fatalf("a runner signed by another key: %d results, %d files, messages %q", len(rep.Results), len(rep.Files), rep.Messages)
	}
	if after := r.stateOf(); after != before {
		t.Fatalf("a refused work request changed the state:\n%s\n%s", before, after)
	}
	runner := r.runners[testPlatform]
	if _, err := r.srv.codeSignature("the runner", runner.MD5); err == nil || !strings.Contains(err.Error(), "not by this project's code-signing key") {
		t.Fatalf("a signature by another key: %v", err)
	}

	// Added again with signatures by the project's key: the work comes,
	// with the signatures stored.
	sigs := r.signed(apps.Primes)
	r.addApp("primes", apps.Primes, sigs)
	rep = r.rpc(c, true, nil, nil)
	if len(rep.Results) != 1 || len(rep.Versions) != 1 {
		t.Fatalf("after signing: %d results, %d versions, messages %q", len(rep.Results), len(rep.Versions), rep.Messages)
	}
	pub, err := ParsePublicKey([]byte(strings.TrimSpace(rep.CodeSignKey) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for _, s := range sigs {
		stored[s.MD5] = s.Signature
	}
	for _, f := range rep.Files {
		if f.Signature == "" {
			continue // the output's file_info
		}
		if strings.TrimSpace(f.Signature) != strings.TrimSpace(stored[f.MD5]) {
			t.Errorf("%s: sent signature %q, stored %q", f.Name, f.Signature, stored[f.MD5])
		}
		if err := VerifyFile(pub, f.MD5, f.Signature); err != nil {
			t.Errorf("%s: the signature sent does not verify with code_sign_key: %v", f.Name, err)
		}
	}

	// An app added without code signatures: its task is not sent.
	r.addApp("mandel", apps.Mandel, nil)
	r.submit("mandel", "b2", 1, [2]int{0, 1})
	rep = r.rpc(c, true, nil, []string{rep.Results[0].Name})
	if len(rep.Results) != 0 || slices.ContainsFunc(rep.Files, func(f parsedFile) bool { return f.Name == string(wu.HashOf(apps.Mandel))+".wasm" }) {
		t.Fatalf("an unsigned module was sent: %d results, files %+v", len(rep.Results), rep.Files)
	}
	if _, err := r.srv.codeSignature("the module", md5Hex(apps.Mandel)); err == nil || !strings.Contains(err.Error(), "momonga-project app add") {
		t.Fatalf("an unsigned module: %v", err)
	}
}

// A client that keeps reporting the tasks it holds keeps them; one the
// project no longer gives it is aborted.
func TestHeldTasksAreBeatAndStaleOnesAborted(t *testing.T) {
	r := newRig(t, rigConfig{})
	key := r.user("bob")
	r.primes("b1", 1, [2]int{0, 10})
	c := &client{auth: key, cpid: "cafe"}
	rep := r.rpc(c, true, nil, nil)
	if len(rep.Results) != 1 {
		t.Fatalf("want a task, got %+v", rep)
	}
	task := rep.Results[0].Name
	rep = r.rpc(c, false, nil, []string{task, "wu999_0"})
	if len(rep.Aborts) != 1 || rep.Aborts[0] != "wu999_0" || rep.NextRPCDelay <= 0 {
		t.Fatalf("beat: aborts %v, next rpc %v", rep.Aborts, rep.NextRPCDelay)
	}
}

// TestLostTasksAreSentAgain: a task the client does not list, in a request
// for work, though the project gave it to this host, was lost with a reply
// that never reached it: it is sent again, whole.
func TestLostTasksAreSentAgain(t *testing.T) {
	r := newRig(t, rigConfig{})
	key := r.user("cy")
	r.primes("b1", 1, [2]int{0, 10}, [2]int{10, 20})
	c := &client{auth: key, cpid: "beef"}
	lost := r.rpc(c, true, nil, nil)
	if len(lost.Results) != 2 {
		t.Fatalf("want two tasks, got %+v", lost)
	}
	kept, gone := lost.Results[0].Name, lost.Results[1].Name
	rep := r.rpc(c, true, nil, []string{kept})
	if len(rep.Results) != 1 || rep.Results[0].Name != gone || len(rep.WorkUnits) != 1 || len(rep.Versions) != 1 {
		t.Fatalf("sent again: %d results %v, %d units, %d versions; want %s alone, whole", len(rep.Results), rep.Results, len(rep.WorkUnits), len(rep.Versions), gone)
	}
	if rep = r.rpc(c, true, nil, []string{kept, gone}); len(rep.Results) != 0 {
		t.Fatalf("a client that lists both got %v", rep.Results)
	}
}

func TestAccountsOfTheAttachWizard(t *testing.T) {
	r := newRig(t, rigConfig{accountCreation: true})
	r.user("ann")
	hash := func(pw, email string) string {
		s := md5.Sum([]byte(pw + strings.ToLower(email)))
		return hex.EncodeToString(s[:])
	}
	form := url.Values{"email_addr": {"Zoe@example.org"}, "passwd_hash": {hash("secret1", "zoe@example.org")}, "user_name": {"Zoe Z"}}
	auth, num := r.account("create_account.php", form)
	if num != 0 || !wu.ValidAccountKey(auth) {
		t.Fatalf("create_account: %q, error %d", auth, num)
	}
	again, _ := r.account("create_account.php", form)
	if again != auth {
		t.Fatal("creating the same account twice gave two keys")
	}
	form.Set("passwd_hash", hash("other", "zoe@example.org"))
	if _, num := r.account("create_account.php", form); num != errDBNotUnique {
		t.Fatalf("a second account with one address: error %d", num)
	}
	looked, num := r.account("lookup_account.php", url.Values{"email_addr": {"zoe@example.org"}, "passwd_hash": {hash("secret1", "zoe@example.org")}})
	if num != 0 || looked != auth {
		t.Fatalf("lookup_account: %q, error %d", looked, num)
	}
	if _, num := r.account("lookup_account.php", url.Values{"email_addr": {"zoe@example.org"}, "passwd_hash": {hash("wrong", "zoe@example.org")}}); num != errBadPasswd {
		t.Fatalf("wrong password: error %d", num)
	}
	if _, num := r.account("lookup_account.php", url.Values{"email_addr": {"nobody@example.org"}, "passwd_hash": {hash("x", "nobody@example.org")}}); num != errDBNotFound {
		t.Fatalf("unknown address: error %d", num)
	}
	var found bool
	_ = r.peer.Query(context.Background(), func(m *sched.Machine) {
		for _, u := range m.Accounts().Users {
			found = found || u.Name == "Zoe_Z" && u.Email == "Zoe@example.org"
		}
	})
	if !found {
		t.Fatal("the account is not a user of the project")
	}
	// The key attaches a BOINC host.
	rep := r.rpc(&client{auth: auth, cpid: "c1"}, false, nil, nil)
	if rep.HostID == 0 || rep.UserName != "Zoe_Z" {
		t.Fatalf("attach with the created account: %+v", rep)
	}
	_, page := r.get(r.url+"get_project_config.php", nil)
	if !strings.Contains(string(page), "<platform_name>"+testPlatform+"</platform_name>") || strings.Contains(string(page), "account_creation_disabled") {
		t.Fatalf("project config:\n%s", page)
	}
}

func TestAccountCreationCanBeOff(t *testing.T) {
	r := newRig(t, rigConfig{})
	before := r.stateOf()
	if _, num := r.account("create_account.php", url.Values{"email_addr": {"a@b.c"}, "passwd_hash": {strings.Repeat("a", 32)}, "user_name": {"a"}}); num != errCreationDisabled {
		t.Fatalf("error %d", num)
	}
	if r.stateOf() != before {
		t.Fatal("a refused account creation changed the state")
	}
}
