package boinc

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/project/blobs"
	"github.com/momonga-project/momonga/project/gateway"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/sched/schedtest"
	"github.com/momonga-project/momonga/vpeer/vpeertest"
	wu "github.com/momonga-project/momonga/workunits"
)

// The tests' project: scheduler members on vpeer's in-memory log, a
// gateway in front of them, blobs in memory, and the BOINC side on a
// loopback HTTP server.

var appKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

const testPlatform = "x86_64-pc-linux-gnu"

type rig struct {
	t     *testing.T
	peer  *schedtest.Peer
	blobs *blobs.Mem
	gw    *gateway.Gateway
	srv   *Server
	http  *httptest.Server
	url   string
	// key signs the apps as `momonga-project app add` would; the BOINC
	// side has its public half only.
	key     *rsa.PrivateKey
	runner  []byte
	runners map[string]Runner
	seq     uint64
}

// viaGateway is the Gateway of the BOINC side: a request served by the
// gateway in this process, answered by it or by a member.
type viaGateway struct {
	gw      *gateway.Gateway
	inboxes *vpeertest.Inboxes
}

func (v viaGateway) Request(ctx context.Context, subject string, body []byte) ([]byte, error) {
	inbox, wait := v.inboxes.Wait()
	v.gw.Serve(ctx, &nats.Msg{Subject: subject, Reply: inbox, Data: body})
	return wait(ctx)
}

// inboxPublisher carries the gateway's own answers to the inboxes.
type inboxPublisher struct{ inboxes *vpeertest.Inboxes }

func (p inboxPublisher) PublishMsg(m *nats.Msg) error { return p.inboxes.Reply(m.Subject, m.Data) }

// peerDirectory reads the state from the peer's first member.
type peerDirectory struct{ p *schedtest.Peer }

func (d peerDirectory) query(fn func(*sched.Machine)) {
	_ = d.p.Query(context.Background(), fn)
}

func (d peerDirectory) Status() (rep wu.StatusReply) {
	d.query(func(m *sched.Machine) { rep = m.Status() })
	return rep
}

func (d peerDirectory) Results(q wu.ResultsQuery) (rep wu.ResultsReply, err error) {
	d.query(func(m *sched.Machine) { rep, err = m.Results(q) })
	return rep, err
}

func (d peerDirectory) Accounts() (rep wu.AccountsReply) {
	d.query(func(m *sched.Machine) { rep = m.Accounts() })
	return rep
}

func (d peerDirectory) Credit(host string) (rep wu.CreditReply) {
	rep.V = wu.WireVersion
	d.query(func(m *sched.Machine) {
		if _, ok := m.OwnerOf(host); !ok {
			rep.Error = wu.Errorf(wu.CodeNotFound, "host %s is not registered", host)
		}
	})
	return rep
}

func (d peerDirectory) HostByNKey(nkey string) (hc wu.HostCredential, ok bool) {
	d.query(func(m *sched.Machine) { hc, ok = m.HostByNKey(nkey) })
	return hc, ok
}

func (d peerDirectory) UserByKeyHash(h wu.Hash) (id string, ok bool) {
	d.query(func(m *sched.Machine) { id, ok = m.UserByKeyHash(h) })
	return id, ok
}

func (d peerDirectory) CodeSignature(sum string) (sig string, ok bool) {
	d.query(func(m *sched.Machine) { sig, ok = m.CodeSignature(sum) })
	return sig, ok
}

var codeKey = func() *rsa.PrivateKey {
	dir, err := os.MkdirTemp("", "boinc-key")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := InitCodeSigning(dir); err != nil {
		panic(err)
	}
	k, err := ReadCodeSigningKey(filepath.Join(dir, CodeSignPrivateFile))
	if err != nil {
		panic(err)
	}
	return k
}()

type rigConfig struct {
	accountCreation bool
}

func newRig(t *testing.T, rc rigConfig) *rig {
	t.Helper()
	r := &rig{t: t, blobs: &blobs.Mem{}, key: codeKey}
	r.peer = schedtest.Start(t, schedtest.Config{Sched: sched.Config{Lease: time.Hour, Project: "test"}})
	r.gw = gateway.New(gateway.Config{
		Log: r.peer, Blobs: r.blobs, Uploads: blobs.MemUploads{Store: r.blobs, MaxBytes: wu.MaxOutputBytes},
		Reads: peerDirectory{r.peer}, Publish: inboxPublisher{r.peer.Inboxes}, SigningKey: appKey.Public().(ed25519.PublicKey),
		Logger: vpeertest.TestLogger(t),
	})
	dir := t.TempDir()
	r.runner = []byte("#!/bin/sh\n# a runner for the tests\n")
	if err := os.WriteFile(filepath.Join(dir, RunnerFile(testPlatform)), r.runner, 0o755); err != nil {
		t.Fatal(err)
	}
	runners, err := LoadRunners(dir)
	if err != nil {
		t.Fatal(err)
	}
	r.runners = runners
	mux := http.NewServeMux()
	r.http = httptest.NewServer(mux)
	t.Cleanup(r.http.Close)
	r.url = r.http.URL + "/"
	r.srv, err = New(Config{
		URL: r.url, ProjectName: "test", Gateway: viaGateway{r.gw, r.peer.Inboxes}, Directory: peerDirectory{r.peer},
		Blobs: r.blobs, Uploads: blobs.MemUploads{Store: r.blobs, MaxBytes: wu.MaxOutputBytes},
		CodeSignKey: &r.key.PublicKey, Runners: runners, Secret: bytes.Repeat([]byte{9}, 32), UploadDir: filepath.Join(dir, "uploads"),
		AllowAccountCreation: rc.accountCreation, Logger: vpeertest.TestLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", r.srv)
	return r
}

// admin sends a command of the project's tools through the gateway.
func (r *rig) admin(op string, body any) []byte {
	r.t.Helper()
	r.seq++
	cmd := wu.Command{V: 1, Op: op, Host: "adm:test", Seq: r.seq, Body: wu.Encode(body)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := viaGateway{r.gw, r.peer.Inboxes}.Request(ctx, wu.SubjectAdminCommand, wu.Encode(cmd))
	if err != nil {
		r.t.Fatal(err)
	}
	if bytes.Contains(b, []byte(`"error"`)) {
		r.t.Fatalf("%s: %s", op, b)
	}
	return b
}

// user makes a user with an account key of its own and returns the key.
func (r *rig) user(name string) string {
	key := strings.Repeat(name, 16/len(name)+1) + "-account-key"
	r.admin(wu.OpUserAdd, wu.UserAdd{V: 1, Name: name, KeyHash: wu.AccountKeyHash(key)})
	return key
}

// signed is the code signatures of module and the rig's runners by the
// rig's key, as `momonga-project app add` makes them.
func (r *rig) signed(module []byte) []wu.CodeSignature {
	r.t.Helper()
	sigs, err := SignApp(r.key, module, r.runners)
	if err != nil {
		r.t.Fatal(err)
	}
	return sigs
}

// addApp publishes module as an app with the given code signatures.
func (r *rig) addApp(name string, module []byte, codeSigs []wu.CodeSignature) {
	r.t.Helper()
	h, _ := r.blobs.Put(context.Background(), module)
	r.admin(wu.OpAddApp, wu.AddApp{V: 1, Name: name, Hash: h, Size: int64(len(module)), Signature: string(wu.SignApp(appKey, module).Encode()), CodeSigs: codeSigs})
}

// primes publishes the primes app, signed for BOINC, and a batch of units
// over ranges.
func (r *rig) primes(batch string, replication int, ranges ...[2]int) {
	r.t.Helper()
	r.addApp("primes", apps.Primes, r.signed(apps.Primes))
	r.submit("primes", batch, replication, ranges...)
}

// submit adds a batch of an app's units, each given a range.
func (r *rig) submit(app, batch string, replication int, ranges ...[2]int) {
	r.t.Helper()
	var units []wu.UnitSpec
	for _, rg := range ranges {
		units = append(units, wu.UnitSpec{Args: []string{fmt.Sprint(rg[0]), fmt.Sprint(rg[1])}})
	}
	r.admin(wu.OpSubmit, wu.Submit{V: 1, Batch: batch, App: app, Replication: replication, Quorum: replication, Units: units})
}

// stateOf is the part of the status that requests could change.
func (r *rig) stateOf() string {
	st := peerDirectory{r.peer}.Status()
	st.Now, st.Applied = time.Time{}, 0
	return string(wu.Encode(st))
}

// client is a BOINC client as the rig sees it: its account key and host.
type client struct {
	auth   string
	hostID int64
	cpid   string
	codeOK bool
}

// requestXML is a scheduler request as a BOINC 7.20 client writes one.
func (c *client) requestXML(wantWork bool, results []string, other []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<scheduler_request>\n    <authenticator>%s</authenticator>\n    <hostid>%d</hostid>\n    <rpc_seqno>3</rpc_seqno>\n", c.auth, c.hostID)
	b.WriteString("    <core_client_major_version>7</core_client_major_version>\n    <platform_name>" + testPlatform + "</platform_name>\n")
	b.WriteString("    <alt_platform>\n        <name>i686-pc-linux-gnu</name>\n    </alt_platform>\n")
	if wantWork {
		b.WriteString("    <work_req_seconds>8640.000000</work_req_seconds>\n    <cpu_req_secs>8640.000000</cpu_req_secs>\n    <cpu_req_instances>2.000000</cpu_req_instances>\n")
	}
	b.WriteString("<working_global_preferences>\n<global_preferences><run_on_batteries>0</run_on_batteries></global_preferences>\n</working_global_preferences>\n")
	fmt.Fprintf(&b, "<host_info>\n    <timezone>0</timezone>\n    <domain_name>boinc-test</domain_name>\n    <host_cpid>%s</host_cpid>\n", c.cpid)
	b.WriteString("    <p_ncpus>2</p_ncpus>\n    <p_vendor>AuthenticAMD</p_vendor>\n    <p_model>AMD EPYC &amp; friends</p_model>\n    <p_fpops>3000000000.000000</p_fpops>\n")
	b.WriteString("    <m_nbytes>25000000000.000000</m_nbytes>\n    <d_free>100000000000.000000</d_free>\n    <os_name>Linux Debian</os_name>\n    <os_version>12</os_version>\n</host_info>\n")
	for _, res := range results {
		b.WriteString(res)
	}
	b.WriteString("<other_results>\n")
	for _, name := range other {
		fmt.Fprintf(&b, "    <other_result>\n        <name>%s</name>\n        <app_version>0</app_version>\n    </other_result>\n", name)
	}
	b.WriteString("</other_results>\n</scheduler_request>\n")
	return b.String()
}

// reportXML is a finished task as the client reports it.
func reportXML(task string, exit int, out []byte) string {
	return fmt.Sprintf(`<result>
    <name>%s</name>
    <final_cpu_time>1.500000</final_cpu_time>
    <exit_status>%d</exit_status>
    <state>5</state>
    <platform>x86_64-pc-linux-gnu</platform>
<stderr_out>
<core_client_version>7.20.5</core_client_version>
<![CDATA[
done
]]>
</stderr_out>
<file_info>
    <name>%s_out</name>
    <nbytes>%d</nbytes>
    <max_nbytes>1024</max_nbytes>
    <md5_cksum>%s</md5_cksum>
</file_info>
</result>
`, task, exit, task, len(out), md5Hex(out))
}

// parsedReply is what the tests read of a scheduler reply.
type parsedReply struct {
	XMLName      xml.Name     `xml:"scheduler_reply"`
	Messages     []string     `xml:"message"`
	RequestDelay float64      `xml:"request_delay"`
	NextRPCDelay float64      `xml:"next_rpc_delay"`
	HostID       int64        `xml:"hostid"`
	UserName     string       `xml:"user_name"`
	UserCredit   float64      `xml:"user_total_credit"`
	HostCredit   float64      `xml:"host_total_credit"`
	CodeSignKey  string       `xml:"code_sign_key"`
	Apps         []string     `xml:"app>name"`
	Files        []parsedFile `xml:"file_info"`
	Versions     []struct {
		App      string `xml:"app_name"`
		Version  int64  `xml:"version_num"`
		Platform string `xml:"platform"`
		Files    []struct {
			Name string `xml:"file_name"`
			Open string `xml:"open_name"`
		} `xml:"file_ref"`
	} `xml:"app_version"`
	WorkUnits []struct {
		Name        string `xml:"name"`
		CommandLine string `xml:"command_line"`
	} `xml:"workunit"`
	Results []struct {
		Name    string `xml:"name"`
		WU      string `xml:"wu_name"`
		Version int64  `xml:"version_num"`
		File    string `xml:"file_ref>file_name"`
	} `xml:"result"`
	Acks   []string `xml:"result_ack>name"`
	Aborts []string `xml:"result_abort>name"`
}

// parsedFile is a file_info of a scheduler reply.
type parsedFile struct {
	Name      string `xml:"name"`
	URL       string `xml:"url"`
	NBytes    int64  `xml:"nbytes"`
	MaxBytes  int64  `xml:"max_nbytes"`
	MD5       string `xml:"md5_cksum"`
	Signature string `xml:"file_signature"`
	XMLSig    string `xml:"xml_signature"`
}

// post sends a scheduler request and reads the reply.
func (r *rig) post(body string) parsedReply {
	r.t.Helper()
	resp, err := http.Post(r.url+pathScheduler, "text/xml", strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		r.t.Fatalf("scheduler: HTTP %d: %s", resp.StatusCode, b)
	}
	var rep parsedReply
	if err := xml.Unmarshal(b, &rep); err != nil {
		r.t.Fatalf("reply %s: %v", b, err)
	}
	return rep
}

// rpc sends c's scheduler request and remembers the host id it is given.
func (r *rig) rpc(c *client, wantWork bool, results []string, other []string) parsedReply {
	r.t.Helper()
	rep := r.post(c.requestXML(wantWork, results, other))
	if rep.HostID != 0 {
		c.hostID = rep.HostID
	}
	return rep
}

// get downloads a URL the BOINC side gave.
func (r *rig) get(u string, header map[string]string) (int, []byte) {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// uploadReply is a data_server_reply.
type uploadReply struct {
	Status   int    `xml:"status"`
	Message  string `xml:"message"`
	FileSize int64  `xml:"file_size"`
}

// upload sends an upload request as file_xfer.cpp writes it.
func (r *rig) upload(name, signature string, maxBytes int64, data []byte, offset int64) uploadReply {
	r.t.Helper()
	return r.uploadPart(name, signature, maxBytes, data, offset, int64(len(data)))
}

// uploadPart sends the bytes of data from offset to end only.
func (r *rig) uploadPart(name, signature string, maxBytes int64, data []byte, offset, end int64) uploadReply {
	r.t.Helper()
	head := fmt.Sprintf("<data_server_request>\n    <core_client_major_version>7</core_client_major_version>\n<file_upload>\n<file_info>\n<name>%s</name>\n<xml_signature>\n%s</xml_signature>\n<max_nbytes>%d</max_nbytes>\n</file_info>\n<nbytes>%d</nbytes>\n<md5_cksum>%s</md5_cksum>\n<offset>%d</offset>\n<data>\n",
		name, signature, maxBytes, len(data), md5Hex(data), offset)
	return r.postUpload(append([]byte(head), data[offset:end]...))
}

func (r *rig) sizeQuery(name string) uploadReply {
	r.t.Helper()
	return r.postUpload([]byte("<data_server_request>\n    <core_client_major_version>7</core_client_major_version>\n    <get_file_size>" + name + "</get_file_size>\n</data_server_request>\n"))
}

func (r *rig) postUpload(body []byte) uploadReply {
	r.t.Helper()
	resp, err := http.Post(r.url+pathUpload, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var rep uploadReply
	if err := xml.Unmarshal(b, &rep); err != nil {
		r.t.Fatalf("upload reply %q: %v", b, err)
	}
	return rep
}

// account calls one of the account RPCs.
func (r *rig) account(page string, form url.Values) (auth string, errNum int) {
	r.t.Helper()
	_, b := r.get(r.url+page+"?"+form.Encode(), nil)
	var rep struct {
		Auth     string `xml:"authenticator"`
		ErrorNum int    `xml:"error_num"`
	}
	if err := xml.Unmarshal(b, &rep); err != nil {
		r.t.Fatalf("%s: %q: %v", page, b, err)
	}
	return rep.Auth, rep.ErrorNum
}
