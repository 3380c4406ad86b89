// Package sitetest tests the stats site as volunteers and their browsers
// meet it: a secured project with real volunteer clients computing the
// Mandelbrot app, a team joined from a volunteer's host, the pages, the
// API, the metrics and the exports, and (where Debian's chromium is
// installed) headless Chromium following the links.
package sitetest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"image/png"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/client/daemon"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/idle"
	"github.com/momonga-project/momonga/client/prefs"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/auth"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/project/stats"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// The test binary doubles as the volunteers' worker.
const argWorker = "momonga-sitetest-worker"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == argWorker {
		os.Exit(runner.WorkerMain(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

var signingKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))

// hostile names a volunteer's host: the pages must show it as text.
const hostile = `<script>alert("owned")</script>'&`

// tiles is the batch: small tiles of the Mandelbrot set, a second of work
// each under wazero.
var tiles = [][]string{
	{"-0.75", "0.1", "0.05", "48", "32", "400"},
	{"-0.745", "0.11", "0.02", "48", "32", "400"},
	{"-0.7436", "0.1318", "0.002", "48", "32", "500"},
	{"-1.25", "0.02", "0.1", "48", "32", "300"},
	{"0.28", "0.01", "0.04", "48", "32", "300"},
	{"-0.1", "0.95", "0.1", "48", "32", "300"},
}

type site struct {
	srv   *server.Server
	adm   *admin.Client
	url   string
	hosts int
}

// startSite runs a secured project, three users (ann founds crunchers;
// bob joins it from his host, as `momonga team join` does; carl leaves
// the exports from his) and a volunteer client for each, and waits until
// they have computed the batch and the accounting peer has every grant.
func startSite(t *testing.T) *site {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	dir := t.TempDir()
	tls, err := auth.WriteDevTLS(filepath.Join(dir, "tls"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Embedded(filepath.Join(dir, "project"), "127.0.0.1:0")
	cfg.HTTPListen, cfg.StatsDir, cfg.ExportEvery = "127.0.0.1:0", filepath.Join(dir, "stats"), time.Hour
	cfg.TickInterval = 200 * time.Millisecond
	cfg.Sched = sched.Config{Project: "Tiles at home", Lease: 10 * time.Second, Beat: 2 * time.Second, Retry: 200 * time.Millisecond}
	cfg.Trust = server.Trust{SigningKey: signingKey.Public().(ed25519.PublicKey), TLSCert: tls.Cert, TLSKey: tls.Key}
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	adm, err := admin.Dial(ctx, srv.ClientURL(), nats.UserCredentials(srv.AdminCreds()), nats.RootCAs(tls.CA))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	s := &site{srv: srv, adm: adm, url: strings.TrimSuffix(srv.StatsURL(), "/")}

	if _, err := adm.AddApp(ctx, "mandel", apps.Mandel, wu.SignApp(signingKey, apps.Mandel).Encode(), wu.Policy{Replication: 2, Quorum: 2}); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dedicated := prefs.Defaults()
	dedicated.RunIfUserActive, dedicated.RunOnBattery, dedicated.SuspendCPUPercent = true, true, 0
	volunteers := []struct {
		user, host string
		set        *wu.UserSet
	}{
		{"ann", "ann-desktop", nil},
		{"bob", "bob-laptop", &wu.UserSet{Team: ptr("crunchers")}},
		{"carl", hostile, &wu.UserSet{StatsExport: ptr(false), Country: ptr("Österreich")}},
	}
	for i, v := range volunteers {
		_, key, err := adm.CreateUser(ctx, wu.UserAdd{Name: v.user, Email: v.user + "@example.org"})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := adm.CreateTeam(ctx, wu.TeamAdd{Name: "crunchers", Founder: "ann", Type: 2, Country: "Japan",
				URL: "https://example.org/crunchers", Description: "We crunch <tiles> & more."}); err != nil {
				t.Fatal(err)
			}
		}
		data := filepath.Join(dir, v.user)
		if _, err := daemon.Attach(ctx, daemon.AttachConfig{DataDir: data, URL: srv.ClientURL(), AccountKey: key, Name: v.host, CAFile: tls.CA}); err != nil {
			t.Fatal(err)
		}
		if v.set != nil {
			if _, err := daemon.SetAccount(ctx, daemon.AccountConfig{DataDir: data, Set: *v.set}); err != nil {
				t.Fatalf("%s's settings from the host: %v", v.user, err)
			}
		}
		flops := float64(i+2) * 1e9
		d, err := daemon.New(daemon.Config{DataDir: data, CPUs: 1, Name: v.host, Worker: runner.Worker{Command: []string{exe, argWorker}},
			Prefs: &dedicated, Monitor: idle.Unwatched(), Control: "off",
			Benchmark: func(context.Context) (host.Benchmarks, error) {
				return host.Benchmarks{FLOPS: flops, IOPS: 2 * flops, MemBytesPerSec: 1e10, WasmOPS: 1e8, At: time.Now()}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		dctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- d.Run(dctx) }()
		t.Cleanup(func() { stop(); <-done })
	}
	s.hosts = len(volunteers)
	sub := wu.Submit{Batch: "tiles", App: "mandel", DeadlineSeconds: 600, Limits: wu.Limits{MaxSeconds: 120}}
	for _, args := range tiles {
		sub.Units = append(sub.Units, wu.UnitSpec{Args: args, FPOps: 1e12})
	}
	if _, err := adm.Submit(ctx, sub); err != nil {
		t.Fatal(err)
	}
	for {
		var b stats.BatchPage
		if code := getJSON(t, s.url+"/api/v1/batches/tiles", &b); code == 200 && b.Valid == len(tiles) && s.delivered() {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the volunteers did not finish the batch: %+v", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// delivered reports whether the accounting peer has every grant made.
func (s *site) delivered() bool {
	empty := false
	_ = s.srv.Group().Query(context.Background(), func(m *vpeer.Member) { empty = len(m.Machine().(*sched.Machine).Outbox(0)) == 0 })
	return empty
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}
	return resp.StatusCode
}

func getBytes(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", url, resp.StatusCode, b)
	}
	return b
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(a)) }

func TestStatsSite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a project and three volunteers")
	}
	s := startSite(t)
	t.Run("api", s.checkAPI)
	t.Run("exports", s.checkExports)
	t.Run("browser", s.checkBrowser)
}

// checkAPI: the figures agree with each other and with what the volunteers
// did.
func (s *site) checkAPI(t *testing.T) {
	var o stats.Overview
	getJSON(t, s.url+"/api/v1/overview", &o)
	if o.Project != "Tiles at home" || o.Users != 3 || o.Hosts != 3 || o.Teams != 1 || o.ActiveHosts != 3 || o.ActiveUsers != 3 || !(o.FLOPS > 0) || len(o.Daily) != 30 {
		t.Fatalf("overview: %+v", o)
	}
	var users stats.Board
	getJSON(t, s.url+"/api/v1/users?by=credit", &users)
	sum := 0.0
	byName := map[string]stats.Entry{}
	for i, e := range users.Entries {
		if e.Rank != i+1 || i > 0 && e.Credit > users.Entries[i-1].Credit {
			t.Fatalf("users board out of order: %+v", users.Entries)
		}
		sum += e.Credit
		byName[e.Name] = e
	}
	if len(users.Entries) != 3 || !near(sum, o.TotalCredit) || !near(o.Daily[29].Credit, o.TotalCredit) {
		t.Fatalf("users' credit %g, total %g, today %g", sum, o.TotalCredit, o.Daily[29].Credit)
	}
	var team stats.TeamPage
	getJSON(t, s.url+"/api/v1/teams/1", &team)
	if team.Name != "crunchers" || team.MembersTotal != 2 || team.Founder == nil || team.Founder.Name != "ann" || team.Country != "Japan" {
		t.Fatalf("team: %+v", team)
	}
	// bob joined from his host before computing: all his credit is the
	// team's, as is ann's.
	if !near(team.Total, byName["ann"].Credit+byName["bob"].Credit) || team.CreditRank != 1 {
		t.Fatalf("team credit %g, ann %g + bob %g", team.Total, byName["ann"].Credit, byName["bob"].Credit)
	}
	var carl stats.UserPage
	getJSON(t, s.url+fmt.Sprintf("/api/v1/users/%d", byName["carl"].ID), &carl)
	if carl.Country != "Österreich" || carl.Team != nil || len(carl.Hosts) != 1 || carl.Hosts[0].Name != hostile || !near(carl.Hosts[0].Credit, carl.Total) {
		t.Fatalf("carl: %+v", carl)
	}
	var h stats.HostPage
	getJSON(t, s.url+fmt.Sprintf("/api/v1/hosts/%d", carl.Hosts[0].ID), &h)
	if h.FLOPS != 4e9 || h.User == nil || h.User.Name != "carl" || len(h.Recent) == 0 || h.Valid == 0 || h.Recent[0].Batch != "tiles" {
		t.Fatalf("carl's host: %+v", h)
	}
	var b stats.BatchPage
	getJSON(t, s.url+"/api/v1/batches/tiles", &b)
	if b.Units != len(tiles) || b.Pending != 0 || len(b.Pictures) != len(tiles) || b.Hourly[len(b.Hourly)-1] != len(tiles) {
		t.Fatalf("batch: %+v", b)
	}
	img, err := png.Decode(bytes.NewReader(getBytes(t, s.url+"/batches/tiles/pictures/0.png")))
	if err != nil || img.Bounds().Dx() != 48 || img.Bounds().Dy() != 32 {
		t.Fatalf("picture: %v", err)
	}
	// Each tile's two replicas reported, and one more where a replica was
	// given again (a lease that ran out on a busy machine): the metrics
	// count what the scheduler's status counts.
	st, err := s.adm.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reported := -1
	for _, sb := range st.Batches {
		if sb.Name == "tiles" {
			reported = sb.Tasks[wu.TaskReported]
		}
	}
	if reported < 2*len(tiles) {
		t.Errorf("%d tasks reported, want at least %d", reported, 2*len(tiles))
	}
	metrics := string(getBytes(t, s.url+"/metrics"))
	for _, want := range []string{`momonga_members_serving{group="sched"} 1`, `momonga_lease_holder{group="acct"`, "momonga_hosts_active 3",
		fmt.Sprintf(`momonga_tasks{state="reported"} %d`, reported), fmt.Sprintf("momonga_results_reported_total %d", reported), "momonga_blob_store_bytes"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q; they have:\n%s", want, metricLines(metrics, strings.SplitN(want, "{", 2)[0]))
		}
	}
}

// checkExports: `momonga-project export` writes what db_dump would: carl
// chose to leave the exports.
func (s *site) checkExports(t *testing.T) {
	dir := t.TempDir()
	files, err := s.adm.Export(context.Background(), dir)
	if err != nil || len(files) != 4 {
		t.Fatalf("export: %v %+v", err, files)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(zr)
		}
		return b
	}
	var users struct {
		Users []struct {
			ID     int     `xml:"id"`
			Name   string  `xml:"name"`
			CPID   string  `xml:"cpid"`
			Credit float64 `xml:"total_credit"`
			TeamID int     `xml:"teamid"`
		} `xml:"user"`
	}
	if err := xml.Unmarshal(read("user.gz"), &users); err != nil || len(users.Users) != 2 {
		t.Fatalf("user.gz: %v %+v", err, users)
	}
	if users.Users[0].Name != "ann" || users.Users[0].TeamID != 1 || len(users.Users[0].CPID) != 32 || users.Users[0].CPID == users.Users[1].CPID {
		t.Fatalf("user.gz: %+v", users)
	}
	var hosts struct {
		Hosts []struct {
			ID     int    `xml:"id"`
			UserID int    `xml:"userid"`
			CPID   string `xml:"host_cpid"`
			Model  string `xml:"p_model"`
		} `xml:"host"`
	}
	if err := xml.Unmarshal(read("host.gz"), &hosts); err != nil || len(hosts.Hosts) != 2 {
		t.Fatalf("host.gz: %v %+v", err, hosts)
	}
	var tables struct {
		Users int `xml:"nusers_total"`
		Hosts int `xml:"nhosts_total"`
		Teams int `xml:"nteams_total"`
	}
	if err := xml.Unmarshal(read("tables.xml"), &tables); err != nil || tables.Users != 3 || tables.Hosts != 3 || tables.Teams != 1 {
		t.Fatalf("tables.xml: %v %+v", err, tables)
	}
	for _, f := range stats.ExportFiles {
		if bytes.Contains(read(f), []byte("@example.org")) {
			t.Errorf("%s exports an e-mail address", f)
		}
	}
	// The server's own export, written when it started, is served.
	if !bytes.Contains(getBytes(t, s.url+"/stats/tables.xml"), []byte("<tables>")) {
		t.Error("/stats/tables.xml")
	}
}

// figures reads the figures a page marks with data-k.
const figures = `Object.fromEntries([...document.querySelectorAll('[data-k]')].map(e => [e.dataset.k, e.textContent]))`

// number reads a figure as a page writes it: 1,234.56 or #12.
func number(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(strings.NewReplacer(",", "", "#", "").Replace(s), 64)
	if err != nil {
		t.Fatalf("figure %q is not a number", s)
	}
	return v
}

// same checks that a page's figures equal its API document's, to the
// page's two decimals.
func same(t *testing.T, page string, shown map[string]string, api map[string]float64) {
	t.Helper()
	for k, want := range api {
		got, ok := shown[k]
		if !ok {
			t.Errorf("%s shows no %s", page, k)
			continue
		}
		if v := number(t, got); math.Abs(v-want) > 0.005+1e-9*math.Abs(want) {
			t.Errorf("%s shows %s %s; the API says %g", page, k, got, want)
		}
	}
}

// checkBrowser drives headless Chromium from the front page through links
// to a user, their team, a host and the batch, comparing what each page
// shows with the API, and saves a screenshot of each.
func (s *site) checkBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (apt-get install chromium)")
	}
	shots := os.Getenv("MOMONGA_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1100, 1400))
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			t.Errorf("a page ran a script: dialog %q", d.Message)
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// shot saves a screenshot of the whole page (PNG at quality 100).
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		})
	}
	// read waits for a page, saves its screenshot and reads its figures
	// and its path.
	read := func(name string) (map[string]string, string) {
		t.Helper()
		do(name, chromedp.WaitVisible(chromedp.CSS("main h1")), shot(name))
		shown, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](figures))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		path, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return shown, path
	}

	do("overview", chromedp.Navigate(s.url+"/"))
	shown, _ := read("overview")
	var o stats.Overview
	getJSON(t, s.url+"/api/v1/overview", &o)
	same(t, "/", shown, map[string]float64{"total_credit": o.TotalCredit, "active_hosts": float64(o.ActiveHosts),
		"active_users": float64(o.ActiveUsers), "hosts": float64(o.Hosts), "users": float64(o.Users)})
	if !strings.HasSuffix(shown["flops"], "FLOPS") {
		t.Errorf("computing power shown as %q", shown["flops"])
	}

	// Users, then the first of them in a team.
	do("leaderboard", chromedp.Click(chromedp.CSS(`header a[href="/users"]`)), chromedp.WaitVisible(chromedp.CSS("main table")),
		chromedp.Click(chromedp.CSS(`main table tr:has(a[href^="/teams/"]) a[href^="/users/"]`)))
	shown, path := read("user")
	var u stats.UserPage
	getJSON(t, s.url+"/api/v1"+path, &u)
	same(t, path, shown, map[string]float64{"total_credit": u.Total, "rac": u.RAC, "credit_rank": float64(u.CreditRank),
		"rac_rank": float64(u.RACRank), "results": float64(u.Results)})
	if u.CreditRank < 1 || u.Team == nil {
		t.Fatalf("the first user in a team: %+v", u)
	}

	// Their team, from the user's page.
	do("team", chromedp.Click(chromedp.CSS(`main dd a[href^="/teams/"]`)))
	shown, path = read("team")
	var tm stats.TeamPage
	getJSON(t, s.url+"/api/v1"+path, &tm)
	same(t, path, shown, map[string]float64{"total_credit": tm.Total, "rac": tm.RAC, "credit_rank": float64(tm.CreditRank)})

	// A host: the hosts' leaderboard, the one with the hostile name.
	do("hosts", chromedp.Navigate(s.url+"/hosts"), chromedp.WaitVisible(chromedp.CSS("main table")), shot("hosts"),
		chromedp.Click(chromedp.Search(`//main//table//a[contains(text(), "alert")]`)))
	shown, path = read("host")
	var h stats.HostPage
	getJSON(t, s.url+"/api/v1"+path, &h)
	same(t, path, shown, map[string]float64{"total_credit": h.Total, "rac": h.RAC, "credit_rank": float64(h.CreditRank), "results": float64(h.Results)})
	title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main h1")))
	if err != nil || !strings.Contains(title, hostile) {
		t.Errorf("the host's name shows as %q (%v)", title, err)
	}

	// The batch, from the front page, with its pictures drawn.
	do("batch", chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.CSS("main table")), chromedp.Click(chromedp.CSS(`main a[href="/batches/tiles"]`)),
		chromedp.WaitVisible(chromedp.CSS(".pics img")))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`[...document.images].every(i => i.complete && i.naturalWidth > 0)`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("pictures: %v", err)
	}
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.images].filter(i => i.naturalWidth == 48).length`))
	if err != nil {
		t.Fatal(err)
	}
	shown, path = read("batch")
	var b stats.BatchPage
	getJSON(t, s.url+"/api/v1"+path, &b)
	same(t, path, shown, map[string]float64{"units": float64(b.Units), "valid": float64(b.Valid), "errored": float64(b.Errored), "pending": float64(b.Pending),
		"units_per_hour": b.PerHour})
	if drawn != len(tiles) {
		t.Errorf("%d pictures drawn of %d", drawn, len(tiles))
	}

	// On a phone's width the front page still fits.
	do("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.CSS("main h1")), shot("phone"))
	wide, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if err != nil || wide {
		t.Errorf("the front page is wider than a phone's screen (%v)", err)
	}
	t.Logf("screenshots in %s", shots)
}

// metricLines are the lines of metrics about name, for a failure's message.
func metricLines(metrics, name string) string {
	var out []string
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, name) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
