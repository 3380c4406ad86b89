package stats

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/sched"
	wu "github.com/momonga-project/momonga/workunits"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Hostile text, as volunteers may name their hosts and teams describe
// themselves: markup, quotes, an ampersand, odd Unicode (right-to-left
// override, a lone surrogate's bytes, a control character).
const (
	hostile     = `<script>alert("x")</script>'&"`
	hostileText = "Über <b>bold</b> & \u202egnp.exe \xed\xa0\x80 \x01end"
)

// fake is a Source over fixed values.
type fake struct {
	panics bool
}

var (
	fakeUser = UserPage{Ref: Ref{ID: 1, Name: "ann"}, Now: now, Country: hostileText, Created: now.Add(-48 * time.Hour),
		Team:   &Ref{ID: 1, Name: "crunchers"},
		Credit: Credit{Total: 1234.5, RAC: 12.25, Results: 7, CreditRank: 1, RACRank: 2},
		History: History{Days: []Point{{"2026-02-28", 3}, {"2026-03-01", 4}},
			Months: []Point{{"2026-02", 3}, {"2026-03", 4}}},
		Hosts: []Entry{{Ref: Ref{ID: 3, Name: hostile}, Credit: 1234.5, RAC: 12.25}}}
	fakeHost = HostPage{Ref: Ref{ID: 3, Name: hostile}, Now: now, User: &Ref{ID: 1, Name: "ann"}, OS: "linux", OSVersion: hostileText,
		Arch: "amd64", CPUModel: hostile, CPUVendor: "AuthenticAMD", CPUs: 8, Memory: 16e9, FLOPS: 3.5e9, IOPS: 4e9, MemBW: 2e10,
		Created: now.Add(-72 * time.Hour), LastSeen: now.Add(-time.Minute), Valid: 7, Credit: Credit{Total: 1234.5, RAC: 12.25, CreditRank: 4, RACRank: 5},
		Running: []Task{{ID: "wu9_0", Batch: "b1", Unit: "000009", App: "mandel", State: "assigned", Fraction: 0.5, Sent: now}},
		Recent:  []Task{{ID: "wu8_1", Batch: "b1", Unit: "000008", App: "mandel", State: "reported", Validity: "valid", Credit: 2.5, Sent: now}}}
	fakeTeam = TeamPage{Ref: Ref{ID: 1, Name: "crunchers"}, Now: now, Type: 2, Country: hostileText, URL: "https://example.org/?a=1&b=<2>",
		Description: hostileText + "\n" + hostile, Founder: &Ref{ID: 1, Name: "ann"}, Credit: Credit{Total: 99, RAC: 1},
		Members: []Entry{{Ref: Ref{ID: 1, Name: "ann"}, Credit: 99}}, MembersTotal: 1}
)

func (f fake) check() {
	if f.panics {
		panic("a bug in a source")
	}
}

func (f fake) Overview(context.Context) (Overview, error) {
	f.check()
	return Overview{Project: hostile, Now: now, FLOPS: 2.5e12, ActiveHosts: 3, ActiveUsers: 2, Hosts: 4, Users: 2, Teams: 1, TotalCredit: 5000.75,
		Daily: []Point{{"2026-02-28", 10}, {"2026-03-01", 20}}, Batches: []BatchSummary{{Name: "b1", App: "mandel", Units: 10, Valid: 4, Pending: 6}, {Name: "b2", App: "primes", Units: 10, Valid: 3, Cancelled: 7}}}, nil
}

func (f fake) Board(_ context.Context, k Kind, by Order, offset, limit int) (Board, error) {
	f.check()
	b := Board{Kind: k, By: by, Now: now, Offset: offset, Limit: limit, Total: 120, Entries: []Entry{}}
	for i := offset; i < min(offset+limit, 120); i++ {
		b.Entries = append(b.Entries, Entry{Rank: i + 1, Ref: Ref{ID: uint64(i + 1), Name: hostile + strconv.Itoa(i)}, Of: &Ref{ID: 1, Name: "ann"}, Credit: float64(1000 - i), RAC: float64(i)})
	}
	return b, nil
}

func (f fake) User(_ context.Context, id uint64) (UserPage, error) {
	f.check()
	if id != 1 {
		return UserPage{}, ErrNotFound
	}
	return fakeUser, nil
}

func (f fake) Team(_ context.Context, id uint64) (TeamPage, error) {
	if id != 1 {
		return TeamPage{}, ErrNotFound
	}
	return fakeTeam, nil
}

func (f fake) Host(_ context.Context, id uint64) (HostPage, error) {
	if id != 3 {
		return HostPage{}, ErrNotFound
	}
	return fakeHost, nil
}

func (f fake) Apps(context.Context) (AppsPage, error) {
	return AppsPage{Now: now, Apps: []App{{Name: "mandel", Hash: "ab", Size: 1000, Replication: 2, Quorum: 2, Batches: []BatchSummary{{Name: "b1", App: "mandel", Units: 10}}}}}, nil
}

func (f fake) Batch(_ context.Context, name string) (BatchPage, error) {
	if name != "b1" {
		return BatchPage{}, ErrNotFound
	}
	hourly := make([]int, 48)
	hourly[47] = 4
	return BatchPage{BatchSummary: BatchSummary{Name: "b1", App: "mandel", Units: 10, Valid: 4, Pending: 6}, Now: now, Created: now.Add(-2 * time.Hour),
		Hourly: hourly, PerHour: 2, ETASeconds: 3 * 3600, Pictures: []Picture{{Unit: "000001", Output: "pgm"}, {Unit: "000002", Output: "text"}}}, nil
}

func (f fake) Search(_ context.Context, q string, limit int) (SearchPage, error) {
	p := SearchPage{Query: q, Users: []Ref{}, Teams: []Ref{}}
	if strings.HasPrefix("ann", q) {
		p.Users = append(p.Users, Ref{ID: 1, Name: "ann"})
	}
	return p, nil
}

func pgm(w, h int) []byte {
	b := []byte("P5\n# a comment\n" + strconv.Itoa(w) + " " + strconv.Itoa(h) + "\n255\n")
	for i := range w * h {
		b = append(b, byte(i))
	}
	return b
}

func testSite(f fake) http.Handler {
	return Handler(Config{Source: f, Output: func(_ context.Context, h string) ([]byte, error) {
		switch h {
		case "pgm":
			return pgm(4, 3), nil
		case "text":
			return []byte("42\n"), nil
		}
		return nil, ErrNotFound
	}, Measure: func(context.Context) (Measures, error) {
		return Measures{Assigned: 10, Reported: 8, Tasks: map[string]int{"assigned": 2}, ActiveHosts: 3, Refused: map[string]uint64{"rate_limited": 5},
			Groups: []GroupMeasure{{Name: "sched", LogLast: 100, Lease: "m1", Members: []MemberMeasure{{ID: "m1", Applied: 97, Serving: true}}}}}, nil
	}})
}

func get(t *testing.T, h http.Handler, path string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String(), rec.Header()
}

// TestPagesShowTheirAPIDocument: each page renders, and shows the numbers
// its API document holds.
func TestPagesShowTheirAPIDocument(t *testing.T) {
	h := testSite(fake{})
	for _, c := range []struct {
		page, api string
		want      []string
	}{
		{"/", "/api/v1/overview", []string{"2.5TFLOPS", "5,000.75", ">3<", "/batches/b1",
			// b2's 7 units cancelled, beside its valid, errored and pending.
			"<th class=\"n\">Cancelled</th>", `<td class="n">3</td><td class="n">0</td><td class="n">7</td><td class="n">0</td>`}},
		{"/users?page=2", "/api/v1/users?offset=50&limit=50", []string{">51<", "/users/51", "950.00", "page 2 of 3"}},
		{"/hosts?by=rac", "/api/v1/hosts?by=rac", []string{"by recent average credit", "/users/1"}},
		{"/users/1", "/api/v1/users/1", []string{"1,234.50", "#1", "#2", "/teams/1", "/hosts/3"}},
		{"/teams/1", "/api/v1/teams/1", []string{"99.00", "/users/1", "https://example.org/?a=1&amp;b=%3c2%3e"}},
		{"/hosts/3", "/api/v1/hosts/3", []string{"AuthenticAMD", "3.5GFLOPS", "wu9_0", "wu8_1", "valid", "/users/1"}},
		{"/apps", "/api/v1/apps", []string{"mandel", "/batches/b1"}},
		{"/batches/b1", "/api/v1/batches/b1", []string{"/batches/b1/pictures/0.png", "3 h 0 min", "units per hour"}},
		{"/search?q=an", "/api/v1/search?q=an", []string{"/users/1"}},
	} {
		code, body, hdr := get(t, h, c.page)
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s", c.page, code, hdr.Get("Content-Type"))
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q", c.page, w)
			}
		}
		if code, doc, _ := get(t, h, c.api); code != 200 || !json.Valid([]byte(doc)) {
			t.Errorf("%s: %d %s", c.api, code, doc)
		}
	}
	// The API is the page's value.
	_, doc, _ := get(t, h, "/api/v1/users/1")
	var u UserPage
	if err := json.Unmarshal([]byte(doc), &u); err != nil || !reflect.DeepEqual(u.Credit, fakeUser.Credit) || !reflect.DeepEqual(u.History, fakeUser.History) || !strings.HasPrefix(u.Country, "Über <b>bold</b>") {
		t.Errorf("API user: %+v %v", u, err)
	}
	if strings.Contains(doc, "@") {
		t.Errorf("the API shows something like an e-mail address: %s", doc)
	}
}

// TestHostileNamesAreEscaped: no markup from names or texts reaches a page
// as markup, on any page.
func TestHostileNamesAreEscaped(t *testing.T) {
	h := testSite(fake{})
	for _, p := range []string{"/", "/users", "/hosts", "/users/1", "/teams/1", "/hosts/3", "/search?q=%3Cscript%3E", "/batches/b1"} {
		_, body, hdr := get(t, h, p)
		for _, bad := range []string{"<script>", "<b>bold", `alert("x")`, "'&\""} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q unescaped", p, bad)
			}
		}
		if !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s has no content security policy", p)
		}
	}
	if _, body, _ := get(t, h, "/hosts/3"); !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Error("the host's name is not shown escaped")
	}
}

// TestBadRequestsGet400And404 and never a stack trace.
func TestBadRequestsGet400And404(t *testing.T) {
	h := testSite(fake{})
	for path, want := range map[string]int{
		"/users?page=abc":                       400,
		"/users?page=0":                         400,
		"/users?page=1&page=2":                  400,
		"/teams?by=name":                        400,
		"/users/abc":                            400,
		"/users/-1":                             400,
		"/hosts/0":                              400,
		"/users/99":                             404,
		"/teams/2":                              404,
		"/hosts/99999999999999999999":           400,
		"/batches/nope":                         404,
		"/batches/b1/pictures/x.gif":            400,
		"/batches/b1/pictures/9.png":            404,
		"/batches/b1/pictures/1.png":            404, // not a picture
		"/nowhere":                              404,
		"/api/v1/users?limit=1000":              400,
		"/api/v1/users?offset=-5":               400,
		"/api/v1/hosts/12a":                     400,
		"/api/v1/teams/7":                       404,
		"/stats/passwd":                         404,
		"/stats/user.gz":                        404, // no export yet
		"/search?q=" + strings.Repeat("a", 100): 400,
	} {
		code, body, hdr := get(t, h, path)
		if code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
		if strings.Contains(body, "goroutine") || strings.Contains(body, ".go:") {
			t.Errorf("%s shows a stack trace", path)
		}
		if strings.HasPrefix(path, "/api/") && !json.Valid([]byte(body)) {
			t.Errorf("%s: error not in JSON: %s (%s)", path, body, hdr.Get("Content-Type"))
		}
	}
	code, body, _ := get(t, testSite(fake{panics: true}), "/users/1")
	if code != 500 || strings.Contains(body, "goroutine") || strings.Contains(body, "a bug in a source") {
		t.Errorf("a panic: %d %s", code, body)
	}
}

func TestPicturesArePNG(t *testing.T) {
	code, body, hdr := get(t, testSite(fake{}), "/batches/b1/pictures/0.png")
	if code != 200 || hdr.Get("Content-Type") != "image/png" {
		t.Fatalf("%d %s", code, hdr.Get("Content-Type"))
	}
	img, err := png.Decode(strings.NewReader(body))
	if err != nil || img.Bounds() != image.Rect(0, 0, 4, 3) {
		t.Fatalf("%v %v", err, img)
	}
	if g := color.Gray16Model.Convert(img.At(3, 2)).(color.Gray16); g.Y != 11*65535/255 {
		t.Fatalf("pixel (3,2) is %d", g.Y)
	}
	// A batch whose first output is not a picture shows none.
	text := Handler(Config{Source: fake{}, Output: func(context.Context, string) ([]byte, error) { return []byte("42"), nil }})
	if _, doc, _ := get(t, text, "/api/v1/batches/b1"); strings.Contains(doc, "pictures") {
		t.Fatalf("pictures of a text result: %s", doc)
	}
	if _, page, _ := get(t, text, "/batches/b1"); strings.Contains(page, "<img") {
		t.Fatal("the page of a batch of text results shows pictures")
	}
}

func TestMetrics(t *testing.T) {
	code, body, _ := get(t, testSite(fake{}), "/metrics")
	for _, w := range []string{"momonga_tasks_assigned_total 10", `momonga_tasks{state="assigned"} 2`, `momonga_member_lag_records{group="sched",member="m1"} 3`,
		`momonga_lease_holder{group="sched",member="m1"} 1`, "momonga_hosts_active 3", `momonga_gateway_refusals_total{code="rate_limited"} 5`, "go_goroutines"} {
		if !strings.Contains(body, w) {
			t.Errorf("metrics lack %q", w)
		}
	}
	if code != 200 {
		t.Fatal(code)
	}
}

// exportFake is an ExportSource over fixed records.
type exportFake struct{ recs map[Kind][]Record }

func (e exportFake) Records(_ context.Context, k Kind, from, to uint64, out []Record) ([]Record, bool, error) {
	more := false
	for _, r := range e.recs[k] {
		if r.Num >= from && r.Num < to {
			out = append(out, r)
		}
		more = more || r.Num >= to
	}
	return out, more, nil
}

func (e exportFake) ExportApps(context.Context) ([]string, error) {
	return []string{"mandel", "primes<&>"}, nil
}
func (e exportFake) Time(context.Context) (time.Time, error) { return now, nil }

func exportRecords() exportFake {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return exportFake{recs: map[Kind][]Record{
		Users: {
			{Record: sched.Record{Num: 1, Name: "ann", Created: t0, CPID: "0123456789abcdef0123456789abcdef", Country: "Japan", TeamNum: 1}, Credit: 12.5, RAC: 3.25, RACTime: t0.Add(time.Hour)},
			{Record: sched.Record{Num: 2, Name: "bob", Created: t0, CPID: "fedcba9876543210fedcba9876543210"}, Credit: 1, RAC: 0.5, RACTime: t0},
			{Record: sched.Record{Num: 3, Name: "shy", Created: t0, CPID: "00000000000000000000000000000000", NoExport: true}, Credit: 4, RAC: 1, RACTime: t0},
			{Record: sched.Record{Num: 5, Name: "idle", Created: t0, CPID: "11111111111111111111111111111111"}},
		},
		Teams: {
			{Record: sched.Record{Num: 1, Name: "crunchers", Created: t0, Type: 1, UserNum: 1, UserName: "ann", Country: hostileText, URL: "https://example.org/t?a=1&b=2", Text: hostile}, Credit: 12.5, RAC: 3.25, RACTime: t0},
			{Record: sched.Record{Num: 2, Name: "empty", Created: t0, Type: 1}},
		},
		Hosts: {
			{Record: sched.Record{Num: 1, Name: "box", Created: t0, LastSeen: t0.Add(time.Hour), CPID: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", UserNum: 1, Turnround: 3600,
				Info: wu.HostInfo{Name: "box", OS: "linux", OSVersion: hostileText, Arch: "amd64]]>", CPUs: 4, CPUModel: hostile, CPUVendor: "AuthenticAMD",
					MemoryBytes: 8e9, FLOPS: 2e9, IOPS: 3e9, MemBytesPerSec: 1e10, DiskFreeBytes: 5e10, DiskTotalBytes: 1e11, Timezone: 3600, WasmOPS: 1.5e8}},
				Credit: 12.5, RAC: 3.25, RACTime: t0},
			{Record: sched.Record{Num: 2, Name: "open", CPID: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", Info: wu.HostInfo{OS: "linux"}}, Credit: 3},
			{Record: sched.Record{Num: 3, Name: "shy's", CPID: "cccccccccccccccccccccccccccccccc", UserNum: 3, NoExport: true}, Credit: 4},
		},
	}}
}

func exportFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string]*bytes.Buffer{}
	// Slices of two numbers, so that the records are read in several, as
	// a large export reads them.
	sum, err := export(context.Background(), exportRecords(), func(name string) (io.WriteCloser, error) {
		files[name] = &bytes.Buffer{}
		return nopCloser{files[name]}, nil
	}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Users != 3 || sum.Teams != 1 || sum.Hosts != 2 || sum.Credit != 17.5 {
		t.Fatalf("summary %+v", sum)
	}
	out := map[string][]byte{}
	for name, b := range files {
		raw := b.Bytes()
		if strings.HasSuffix(name, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if raw, err = io.ReadAll(zr); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		out[name] = raw
	}
	return out
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// TestExportsMatchGoldenFiles compares the exports with files checked by
// eye against db_dump's output (go test -update rewrites them).
func TestExportsMatchGoldenFiles(t *testing.T) {
	for name, got := range exportFiles(t) {
		golden := filepath.Join("testdata", strings.TrimSuffix(name, ".gz")+".xml.golden")
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s:\n%s", name, golden, got)
		}
	}
}

// boincElements are the elements db_dump writes for each record, in its
// order (sched/db_dump.cpp: write_user, write_team, write_host with
// detail, as db_dump_spec.xml asks for host.gz); those in optional are
// written only when the record has them.
var boincElements = map[string][]string{
	"user": {"id", "name", "create_time", "total_credit", "expavg_credit", "expavg_time", "cpid", "country", "url", "teamid", "has_profile"},
	"team": {"id", "type", "name", "userid", "total_credit", "expavg_credit", "expavg_time", "founder_name", "create_time", "url", "name_html", "description", "country"},
	"host": {"id", "userid", "total_credit", "expavg_credit", "expavg_time", "p_vendor", "p_model", "os_name", "os_version", "misc",
		"create_time", "rpc_time", "timezone", "ncpus", "p_fpops", "p_iops", "p_membw", "m_nbytes", "m_cache", "m_swap", "d_total", "d_free",
		"n_bwup", "n_bwdown", "avg_turnaround", "credit_per_cpu_sec", "host_cpid"},
}

var optional = map[string]bool{"user.country": true, "user.url": true, "user.teamid": true, "user.has_profile": true,
	"team.founder_name": true, "team.url": true, "team.name_html": true, "team.description": true, "host.userid": true}

// TestExportsCarryEveryElementInBOINCsOrder parses the exports: the
// declaration and root of db_dump, every element it writes for a record
// in its order, integer ids, and text that round-trips however hostile.
func TestExportsCarryEveryElementInBOINCsOrder(t *testing.T) {
	files := exportFiles(t)
	for _, f := range []struct{ file, root, rec string }{{"user.gz", "users", "user"}, {"team.gz", "teams", "team"}, {"host.gz", "hosts", "host"}} {
		raw := files[f.file]
		if !bytes.HasPrefix(raw, []byte(`<?xml version="1.0" encoding="utf-8"?>`+"\n<"+f.root+">\n")) || !bytes.HasSuffix(raw, []byte("</"+f.root+">\n")) {
			t.Fatalf("%s: declaration or root:\n%s", f.file, raw)
		}
		dec := xml.NewDecoder(bytes.NewReader(raw))
		depth, records := 0, 0
		var names []string
		for {
			tok, err := dec.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f.file, err)
			}
			switch e := tok.(type) {
			case xml.StartElement:
				depth++
				if depth == 3 {
					names = append(names, e.Name.Local)
				}
			case xml.EndElement:
				depth--
				if depth == 1 {
					records++
					checkOrder(t, f.rec, names)
					names = nil
				}
			case xml.CharData:
				if depth == 3 && names[len(names)-1] == "id" || names != nil && len(names) > 0 && (names[len(names)-1] == "teamid" || names[len(names)-1] == "userid") && depth == 3 {
					if _, err := strconv.ParseUint(string(e), 10, 64); err != nil {
						t.Errorf("%s: %s %q is not an integer", f.file, names[len(names)-1], e)
					}
				}
			}
		}
		want := map[string]int{"user.gz": 2, "team.gz": 1, "host.gz": 1}[f.file]
		if records != want {
			t.Errorf("%s: %d records, want %d (no credit, no user and opted out are left out)", f.file, records, want)
		}
	}
	// Hostile text comes back as it was, bar the characters XML cannot carry.
	var team struct {
		Country     string `xml:"team>country"`
		Description string `xml:"team>description"`
	}
	if err := xml.Unmarshal(files["team.gz"], &team); err != nil {
		t.Fatal(err)
	}
	if team.Description != hostile || !strings.HasPrefix(team.Country, "Über <b>bold</b> & \u202egnp.exe") {
		t.Errorf("team text: %q, %q", team.Description, team.Country)
	}
	var tables struct {
		Users int      `xml:"nusers_total"`
		Teams int      `xml:"nteams_total"`
		Hosts int      `xml:"nhosts_total"`
		Apps  []string `xml:"applications>application>name"`
	}
	if err := xml.Unmarshal(files["tables.xml"], &tables); err != nil || tables.Users != 3 || tables.Hosts != 2 || len(tables.Apps) != 2 || tables.Apps[1] != "primes<&>" {
		t.Errorf("tables.xml: %+v %v", tables, err)
	}
	for name, raw := range files {
		if bytes.Contains(raw, []byte("@")) {
			t.Errorf("%s holds something like an e-mail address", name)
		}
	}
}

func checkOrder(t *testing.T, rec string, got []string) {
	t.Helper()
	all := boincElements[rec]
	i := 0
	for _, name := range got {
		for i < len(all) && all[i] != name {
			if !optional[rec+"."+all[i]] {
				t.Errorf("%s lacks %s (elements %v)", rec, all[i], got)
			}
			i++
		}
		if i == len(all) {
			t.Errorf("%s: element %s out of db_dump's order (elements %v)", rec, name, got)
			return
		}
		i++
	}
	for ; i < len(all); i++ {
		if !optional[rec+"."+all[i]] {
			t.Errorf("%s lacks %s (elements %v)", rec, all[i], got)
		}
	}
}

// TestExportDirIsAtomicAndServed: an export replaces the one before it in
// one step and is served under /stats/.
func TestExportDirIsAtomicAndServed(t *testing.T) {
	root := t.TempDir()
	for range 3 {
		if _, err := ExportDir(context.Background(), exportRecords(), root); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 3 { // current, this export and the one before
		t.Errorf("stats directory holds %d entries", len(entries))
	}
	h := Handler(Config{Source: fake{}, Exports: root})
	code, body, hdr := get(t, h, "/stats/user.gz")
	if code != 200 || hdr.Get("Content-Type") != "application/gzip" {
		t.Fatalf("user.gz: %d %s", code, hdr.Get("Content-Type"))
	}
	zr, err := gzip.NewReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	if !bytes.Contains(raw, []byte("<name>ann</name>")) {
		t.Fatalf("served user.gz: %s", raw)
	}
	if code, body, _ := get(t, h, "/stats/tables.xml"); code != 200 || !strings.Contains(body, "<nusers_total>3</nusers_total>") {
		t.Fatalf("tables.xml: %d %s", code, body)
	}
}

func TestPGMDecodesBothForms(t *testing.T) {
	img, err := DecodePGM([]byte("P2 2 2 15\n0 5\n10 15\n"))
	if err != nil || color.Gray16Model.Convert(img.At(1, 1)).(color.Gray16).Y != 65535 {
		t.Fatalf("P2: %v", err)
	}
	for name, b := range map[string][]byte{
		"short":     []byte("P5 4 4 255\n\x00\x01"),
		"huge":      []byte("P5 100000 100000 255\n"),
		"above max": []byte("P2 1 1 3\n9\n"),
		"no header": []byte("P5"),
		"zero":      []byte("P5 0 3 255\n"),
	} {
		if _, err := DecodePGM(b); err == nil {
			t.Errorf("%s PGM decoded", name)
		}
	}
}

// FuzzDecodePGM: any input is decoded or refused, never a panic or an
// image larger than the bound.
func FuzzDecodePGM(f *testing.F) {
	f.Add(pgm(4, 3))
	f.Add([]byte("P2 2 2 15\n0 5\n10 15\n"))
	f.Add([]byte("P5 2 1 65535\n\x00\x01\x02\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := DecodePGM(b)
		if err == nil && img.Bounds().Dx()*img.Bounds().Dy() > MaxPicturePixels {
			t.Fatal("image over the bound")
		}
	})
}
