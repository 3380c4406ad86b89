package stats

import (
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

var now = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func status() wu.StatusReply {
	return wu.StatusReply{
		Project: "p", Now: now,
		Users:   []wu.UserStatus{{ID: "u1", Name: "ann", Email: "ann@example.org", Team: "crunchers", Created: now.Add(-time.Hour), Hosts: 1, Credit: 12.5, RAC: 3.25}},
		Teams:   []wu.TeamStatus{{ID: "t1", Name: "crunchers", Founder: "ann", Members: 1, Credit: 12.5, RAC: 3.25}},
		Hosts:   []wu.HostStatus{{ID: "h1", Info: wu.HostInfo{Name: "box", OS: "linux", Arch: "amd64", CPUs: 4, FLOPS: 2e9}, User: "ann", Credit: 12.5, RAC: 3.25}},
		Batches: []wu.BatchStatus{{Name: "b1", App: "primes", Units: 10, Valid: 3, Cancelled: 7}},
	}
}

func get(t *testing.T, path string) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler(status).ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != 200 {
		t.Fatalf("GET %s: %d", path, rec.Code)
	}
	return rec.Body.Bytes()
}

func TestBOINCExports(t *testing.T) {
	type doc struct {
		Items []struct {
			ID     string  `xml:"id"`
			Name   string  `xml:"name"`
			Credit float64 `xml:"total_credit"`
			RAC    float64 `xml:"expavg_credit"`
			Time   int64   `xml:"expavg_time"`
			TeamID string  `xml:"teamid"`
			UserID string  `xml:"userid"`
			NUsers int     `xml:"nusers"`
			NCPUs  int     `xml:"p_ncpus"`
		} `xml:",any"`
	}
	for _, c := range []struct{ file, root, id string }{{"user.gz", "users", "u1"}, {"team.gz", "teams", "t1"}, {"host.gz", "hosts", "h1"}} {
		zr, err := gzip.NewReader(bytes.NewReader(get(t, "/stats/"+c.file)))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		raw, _ := io.ReadAll(zr)
		if strings.Contains(string(raw), "example.org") {
			t.Fatalf("%s exports an e-mail address:\n%s", c.file, raw)
		}
		var d doc
		if err := xml.Unmarshal(raw, &d); err != nil || len(d.Items) != 1 {
			t.Fatalf("%s: %v\n%s", c.file, err, raw)
		}
		it := d.Items[0]
		if !strings.Contains(string(raw), "<"+c.root+">") || it.ID != c.id || it.Credit != 12.5 || it.RAC != 3.25 || it.Time != now.Unix() {
			t.Errorf("%s: %+v\n%s", c.file, it, raw)
		}
		switch c.file {
		case "user.gz":
			if it.TeamID != "t1" || it.Name != "ann" {
				t.Errorf("user: %+v", it)
			}
		case "team.gz":
			if it.UserID != "u1" || it.NUsers != 1 {
				t.Errorf("team: %+v", it)
			}
		case "host.gz":
			if it.UserID != "u1" || it.NCPUs != 4 {
				t.Errorf("host: %+v", it)
			}
		}
	}
	rec := httptest.NewRecorder()
	Handler(status).ServeHTTP(rec, httptest.NewRequest("GET", "/stats/passwd", nil))
	if rec.Code != 404 {
		t.Errorf("unknown export: %d", rec.Code)
	}
}

func TestPageShowsUsersTeamsAndRAC(t *testing.T) {
	page := string(get(t, "/"))
	for _, want := range []string{"<h2>Users</h2>", "<td>ann</td><td>crunchers</td>", "<h2>Teams</h2>", "3.25", "/stats/user.gz"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "example.org") {
		t.Error("the page shows an e-mail address")
	}
}

func TestPageShowsCancelledUnits(t *testing.T) {
	page := string(get(t, "/"))
	if want := `<td class="n">10</td><td class="n">3</td><td class="n">0</td><td class="n">7</td><td class="n">0</td>`; !strings.Contains(page, want) || !strings.Contains(page, "<th>Cancelled</th>") {
		t.Errorf("the page does not show batch b1's 7 cancelled units:\n%s", page)
	}
}
