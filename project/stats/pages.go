package stats

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"time"
)

// The pages: one layout, one template per page, each rendering the value
// its API document holds. html/template escapes every name and text in
// its context (element, attribute, URL); the charts are escaped where they
// are drawn (chart.go).

var funcs = template.FuncMap{
	"num":    func(n int) string { return group(strconv.Itoa(n)) },
	"credit": func(v float64) string { return fixedGroup(v, 2) },
	"flops":  func(v float64) string { return short(v) + "FLOPS" },
	"ops":    func(v float64) string { return short(v) },
	"bytes":  func(v int64) string { return short(float64(v)) + "B" },
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"ago": func(t, now time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return duration(now.Sub(t)) + " ago"
	},
	"seconds": func(s float64) string { return duration(time.Duration(s * float64(time.Second))) },
	"pct": func(n, total int) string {
		if total == 0 {
			return "0"
		}
		return strconv.FormatFloat(100*float64(n)/float64(total), 'f', 1, 64)
	},
	"history": historyChart,
	"hourly": func(counts []int, now time.Time) template.HTML {
		values, labels := make([]float64, len(counts)), make([]string, len(counts))
		for i, c := range counts {
			values[i] = float64(c)
			labels[i] = now.Add(-time.Duration(len(counts)-1-i) * time.Hour).UTC().Format("Jan 2 15h")
		}
		return chart("Work units finished per hour", values, labels, "units")
	},
	"pageURL": pageURL,
	"add":     func(a, b int) int { return a + b },
	"kindName": func(k Kind) string {
		switch k {
		case Users:
			return "Users"
		case Teams:
			return "Teams"
		}
		return "Hosts"
	},
	"single": func(k Kind) string { return string(k[:len(k)-1]) },
}

// duration writes d in its largest units: 3 d 4 h, 5 min, 12 s.
func duration(d time.Duration) string {
	switch {
	case d < 0:
		return "0 s"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d d %d h", int(d.Hours())/24, int(d.Hours())%24)
}

// group puts thin spaces between thousands: 1 234 567.
func group(digits string) string {
	neg := len(digits) > 0 && digits[0] == '-'
	if neg {
		digits = digits[1:]
	}
	var b []byte
	for i, c := range []byte(digits) {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b = append(b, ","...)
		}
		b = append(b, c)
	}
	if neg {
		return "-" + string(b)
	}
	return string(b)
}

func fixedGroup(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	whole, frac := s, ""
	for i := range s {
		if s[i] == '.' {
			whole, frac = s[:i], s[i:]
		}
	}
	return group(whole) + frac
}

const layout = `{{define "layout"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{template "title" .}} · momonga</title>
<style>
:root{--fg:#1d2329;--mute:#5b6670;--line:#dde3e8;--accent:#2f7d5b;--bg:#fff}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:var(--fg);background:var(--bg)}
header{background:#17392b;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;gap:.4em 1.2em;align-items:center}
header a{color:#fff;text-decoration:none}header strong a{font-size:1.1em}
header form{margin-left:auto}header input{padding:.3em .5em;border:0;border-radius:4px;width:11em}
main{max-width:64em;margin:0 auto;padding:1em}
h1{font-size:1.5em;margin:.3em 0 .6em}h2{font-size:1.15em;margin:1.6em 0 .5em}
a{color:#1f6a8f}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(9.5em,1fr));gap:.6em}
.card{border:1px solid var(--line);border-radius:6px;padding:.6em .8em}
.card b{display:block;font-size:1.3em;font-variant-numeric:tabular-nums}.card span{color:var(--mute);font-size:.85em}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid var(--line);white-space:nowrap}
th{font-size:.85em;color:var(--mute);font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25em 1em}dt{color:var(--mute)}dd{margin:0}
.chart{width:100%;height:auto;max-width:640px}.chart .bar{fill:var(--accent)}.chart .grid{stroke:var(--line)}
.chart .tick{font-size:11px;fill:var(--mute)}
.bar-out{background:#e9eef1;border-radius:3px;height:.7em;width:8em;display:inline-block;vertical-align:middle}
.bar-in{display:block;background:var(--accent);height:100%;border-radius:3px}
.pics{display:grid;grid-template-columns:repeat(auto-fill,minmax(120px,1fr));gap:.4em}.pics img{width:100%;image-rendering:pixelated;border:1px solid var(--line)}
.pics figure{margin:0}.pics figcaption{font-size:.8em;color:var(--mute)}
nav.pages{margin:.8em 0;display:flex;gap:1em;flex-wrap:wrap}
.mute{color:var(--mute)}
.tabs a{margin-right:1em}.tabs a.on{font-weight:700;text-decoration:none;color:var(--fg)}
footer{max-width:64em;margin:2em auto;padding:0 1em;color:var(--mute);font-size:.85em}
</style></head><body>
<header><strong><a href="/">momonga</a></strong>
<a href="/users">Users</a><a href="/teams">Teams</a><a href="/hosts">Hosts</a><a href="/apps">Apps</a>
<form action="/search" method="get" role="search"><input type="search" name="q" placeholder="Find a user or team" aria-label="Find a user or team"></form>
</header>
<main>{{template "content" .}}</main>
<footer>Credit in Cobblestones (1/200 of a day of a 1 GFLOPS computer); RAC is the recent average credit per day, halving in a week without new credit.
The same data as JSON: <a href="/api/v1/overview">/api/v1</a>. BOINC statistics exports: <a href="/stats/user.gz">user.gz</a>, <a href="/stats/team.gz">team.gz</a>, <a href="/stats/host.gz">host.gz</a>, <a href="/stats/tables.xml">tables.xml</a>.</footer>
</body></html>{{end}}
{{define "entries"}}<div class="scroll"><table><tr><th class="n">Rank</th><th>Name</th><th>{{if eq .Kind "hosts"}}User{{else if eq .Kind "users"}}Team{{end}}</th><th class="n">Credit</th><th class="n">RAC</th></tr>
{{$k := .Kind}}{{range .Entries}}<tr><td class="n">{{.Rank}}</td><td><a href="/{{$k}}/{{.ID}}">{{.Name}}</a></td>
<td>{{with .Of}}<a href="/{{if eq $k "hosts"}}users{{else}}teams{{end}}/{{.ID}}">{{.Name}}</a>{{end}}</td>
<td class="n">{{credit .Credit}}</td><td class="n">{{credit .RAC}}</td></tr>
{{else}}<tr><td colspan="5" class="mute">Nobody yet.</td></tr>{{end}}</table></div>{{end}}
{{define "list"}}<div class="scroll"><table><tr><th>Name</th><th class="n">Credit</th><th class="n">RAC</th></tr>
{{$k := .Kind}}{{range .Entries}}<tr><td><a href="/{{$k}}/{{.ID}}">{{.Name}}</a></td><td class="n">{{credit .Credit}}</td><td class="n">{{credit .RAC}}</td></tr>
{{else}}<tr><td colspan="3" class="mute">None.</td></tr>{{end}}</table></div>{{end}}
{{define "credit"}}<div class="cards">
<div class="card"><b data-k="total_credit">{{credit .Total}}</b><span>total credit</span></div>
<div class="card"><b data-k="rac">{{credit .RAC}}</b><span>recent average credit</span></div>
<div class="card"><b data-k="credit_rank">{{if .CreditRank}}#{{num .CreditRank}}{{else}}–{{end}}</b><span>rank by credit</span></div>
<div class="card"><b data-k="rac_rank">{{if .RACRank}}#{{num .RACRank}}{{else}}–{{end}}</b><span>rank by RAC</span></div>
<div class="card"><b data-k="results">{{num .Results}}</b><span>results credited</span></div>
</div>{{end}}
{{define "history"}}<h2>Credit per day</h2>{{history "Credit per day, last 90 days" .Days}}
{{if .Months}}<details><summary>By month</summary><table><tr><th>Month</th><th class="n">Credit</th></tr>{{range .Months}}<tr><td>{{.Date}}</td><td class="n">{{credit .Credit}}</td></tr>{{end}}</table></details>{{end}}{{end}}
{{define "tasks"}}<div class="scroll"><table><tr><th>Task</th><th>Batch</th><th>App</th><th>State</th><th class="n">Done</th><th class="n">CPU</th><th class="n">Credit</th><th>Sent</th></tr>
{{range .}}<tr><td>{{.ID}}</td><td><a href="/batches/{{.Batch}}">{{.Batch}}</a></td><td>{{.App}}</td><td>{{.State}}{{with .Validity}} · {{.}}{{end}}{{with .Outcome}}{{if ne . "success"}} · {{.}}{{end}}{{end}}</td>
<td class="n">{{printf "%.0f" (mul100 .Fraction)}}%</td><td class="n">{{seconds .CPUSeconds}}</td><td class="n">{{credit .Credit}}</td><td>{{date .Sent}}</td></tr>
{{else}}<tr><td colspan="8" class="mute">None.</td></tr>{{end}}</table></div>{{end}}`

var pages = map[string]string{
	"overview": `{{define "title"}}{{.Project}}{{end}}{{define "content"}}<h1>{{.Project}}</h1>
<div class="cards">
<div class="card"><b data-k="flops">{{flops .FLOPS}}</b><span>computing power, last 24 h</span></div>
<div class="card"><b data-k="active_hosts">{{num .ActiveHosts}}</b><span>active hosts (7 days)</span></div>
<div class="card"><b data-k="active_users">{{num .ActiveUsers}}</b><span>active users (7 days)</span></div>
<div class="card"><b data-k="total_credit">{{credit .TotalCredit}}</b><span>total credit</span></div>
<div class="card"><b data-k="hosts">{{num .Hosts}}</b><span>hosts credited</span></div>
<div class="card"><b data-k="users">{{num .Users}}</b><span>users credited</span></div>
</div>
<h2>Credit per day</h2>{{history "Credit granted per day, last 30 days" .Daily}}
<h2>Batches</h2><div class="scroll"><table><tr><th>Batch</th><th>App</th><th>Progress</th><th class="n">Units</th><th class="n">Valid</th><th class="n">Error</th><th class="n">Cancelled</th><th class="n">Pending</th></tr>
{{range .Batches}}<tr><td><a href="/batches/{{.Name}}">{{.Name}}</a></td><td>{{.App}}</td>
<td><span class="bar-out" role="img" aria-label="{{pct .Valid .Units}}% valid"><span class="bar-in" style="width:{{pct .Valid .Units}}%"></span></span> {{pct .Valid .Units}}%</td>
<td class="n">{{num .Units}}</td><td class="n">{{num .Valid}}</td><td class="n">{{num .Errored}}</td><td class="n">{{num .Cancelled}}</td><td class="n">{{num .Pending}}</td></tr>
{{else}}<tr><td colspan="8" class="mute">No batches yet.</td></tr>{{end}}</table></div>
<p class="mute">Scheduler time {{date .Now}}.</p>{{end}}`,

	"board": `{{define "title"}}{{kindName .Kind}} by {{if eq .By "rac"}}recent average credit{{else}}total credit{{end}}{{end}}{{define "content"}}<h1>{{kindName .Kind}}</h1>
<p class="tabs"><a href="{{pageURL .Kind "credit" 1}}"{{if eq .By "credit"}} class="on"{{end}}>by total credit</a><a href="{{pageURL .Kind "rac" 1}}"{{if eq .By "rac"}} class="on"{{end}}>by recent average credit</a></p>
{{template "entries" .Board}}
<nav class="pages">{{if gt .Page 1}}<a href="{{pageURL .Kind .By 1}}">« first</a><a href="{{pageURL .Kind .By (add .Page -1)}}" rel="prev">‹ previous</a>{{end}}
<span>page {{num .Page}} of {{num .Pages}} ({{num .Total}} {{.Kind}})</span>
{{if lt .Page .Pages}}<a href="{{pageURL .Kind .By (add .Page 1)}}" rel="next">next ›</a><a href="{{pageURL .Kind .By .Pages}}">last »</a>{{end}}</nav>{{end}}`,

	"user": `{{define "title"}}{{.Name}}{{end}}{{define "content"}}<h1>{{.Name}}</h1>
<dl><dt>Team</dt><dd>{{with .Team}}<a href="/teams/{{.ID}}">{{.Name}}</a>{{else}}none{{end}}</dd>
{{with .Country}}<dt>Country</dt><dd>{{.}}</dd>{{end}}<dt>Member since</dt><dd>{{date .Created}}</dd></dl>
{{template "credit" .Credit}}{{template "history" .History}}
<h2>Hosts</h2>{{template "list" (entries "hosts" .Hosts)}}{{if gt .HostsTotal (len .Hosts)}}<p class="mute">The {{len .Hosts}} with the most credit of {{num .HostsTotal}}.</p>{{end}}{{end}}`,

	"team": `{{define "title"}}{{.Name}}{{end}}{{define "content"}}<h1>{{.Name}}</h1>
<dl>{{with .Founder}}<dt>Founder</dt><dd><a href="/users/{{.ID}}">{{.Name}}</a></dd>{{end}}
{{with .Country}}<dt>Country</dt><dd>{{.}}</dd>{{end}}{{with .URL}}<dt>Web site</dt><dd><a href="{{.}}" rel="nofollow noopener">{{.}}</a></dd>{{end}}
<dt>Founded</dt><dd>{{date .Created}}</dd><dt>Members</dt><dd>{{num .MembersTotal}}</dd></dl>
{{with .Description}}<p style="white-space:pre-line">{{.}}</p>{{end}}
{{template "credit" .Credit}}{{template "history" .History}}
<h2>Members</h2>{{template "list" (entries "users" .Members)}}{{if gt .MembersTotal (len .Members)}}<p class="mute">The {{len .Members}} with the most credit of {{num .MembersTotal}}.</p>{{end}}{{end}}`,

	"host": `{{define "title"}}Host {{.ID}}{{end}}{{define "content"}}<h1>{{.Name}} <span class="mute">host {{.ID}}</span></h1>
<dl><dt>Owner</dt><dd>{{with .User}}<a href="/users/{{.ID}}">{{.Name}}</a>{{else}}none{{end}}</dd>
<dt>OS</dt><dd>{{.OS}} {{.OSVersion}} ({{.Arch}})</dd><dt>CPU</dt><dd>{{.CPUVendor}} {{.CPUModel}}</dd><dt>Cores</dt><dd>{{.CPUs}}</dd>
{{if .Memory}}<dt>Memory</dt><dd>{{bytes .Memory}}</dd>{{end}}{{if .DiskFree}}<dt>Disk free</dt><dd>{{bytes .DiskFree}}{{if .DiskTotal}} of {{bytes .DiskTotal}}{{end}}</dd>{{end}}
<dt>Benchmarks</dt><dd>{{flops .FLOPS}} floating point · {{ops .IOPS}} integer ops/s · {{bytes64 .MemBW}}/s memory{{if .WasmOPS}} · {{ops .WasmOPS}} sieved/s under wazero{{end}}</dd>
<dt>Last contact</dt><dd>{{date .LastSeen}} ({{ago .LastSeen .Now}})</dd><dt>Joined</dt><dd>{{date .Created}}</dd>
<dt>Results</dt><dd>{{.Valid}} valid, {{.Invalid}} invalid, {{.Lost}} lost{{if .Turnaround}}; returned in {{seconds .Turnaround}} on average{{end}}</dd>
{{if .Revoked}}<dt>Status</dt><dd>revoked by the project</dd>{{end}}</dl>
{{template "credit" .Credit}}{{template "history" .History}}
<h2>Tasks in progress</h2>{{template "tasks" .Running}}
<h2>Recent results</h2>{{template "tasks" .Recent}}{{end}}`,

	"apps": `{{define "title"}}Apps{{end}}{{define "content"}}<h1>Apps</h1>
{{range .Apps}}<h2>{{.Name}}</h2><p class="mute">sha-256 {{.Hash}}, {{bytes .Size}}, published {{date .Added}}; replication {{.Replication}}, quorum {{.Quorum}}{{if .Adaptive}}, adaptive{{end}}.</p>
<div class="scroll"><table><tr><th>Batch</th><th class="n">Units</th><th class="n">Valid</th><th class="n">Error</th><th class="n">Cancelled</th><th class="n">Pending</th></tr>
{{range .Batches}}<tr><td><a href="/batches/{{.Name}}">{{.Name}}</a></td><td class="n">{{num .Units}}</td><td class="n">{{num .Valid}}</td><td class="n">{{num .Errored}}</td><td class="n">{{num .Cancelled}}</td><td class="n">{{num .Pending}}</td></tr>{{else}}<tr><td colspan="6" class="mute">No batches.</td></tr>{{end}}</table></div>
{{else}}<p>No apps yet.</p>{{end}}{{end}}`,

	"batch": `{{define "title"}}Batch {{.Name}}{{end}}{{define "content"}}<h1>Batch {{.Name}}</h1>
<dl><dt>App</dt><dd>{{.App}}</dd><dt>Submitted</dt><dd>{{date .Created}}</dd></dl>
<div class="cards">
<div class="card"><b data-k="units">{{num .Units}}</b><span>work units</span></div>
<div class="card"><b data-k="valid">{{num .Valid}}</b><span>valid</span></div>
<div class="card"><b data-k="errored">{{num .Errored}}</b><span>in error</span></div>
{{if .Cancelled}}<div class="card"><b data-k="cancelled">{{num .Cancelled}}</b><span>cancelled</span></div>{{end}}
<div class="card"><b data-k="pending">{{num .Pending}}</b><span>pending</span></div>
<div class="card"><b data-k="units_per_hour">{{printf "%.1f" .PerHour}}</b><span>units per hour (last day)</span></div>
<div class="card"><b>{{if .ETASeconds}}{{seconds .ETASeconds}}{{else if eq .Pending 0}}done{{else}}–{{end}}</b><span>time to finish</span></div>
</div>
<p><span class="bar-out" style="width:100%;max-width:40em" role="img" aria-label="{{pct .Valid .Units}}% valid"><span class="bar-in" style="width:{{pct .Valid .Units}}%"></span></span></p>
<h2>Throughput</h2>{{hourly .Hourly .Now}}
{{if .Pictures}}<h2>Results</h2><div class="pics">{{$n := .Name}}{{range $i, $p := .Pictures}}<figure><img src="/batches/{{$n}}/pictures/{{$i}}.png" alt="result of unit {{$p.Unit}}" loading="lazy"><figcaption>{{$p.Unit}}</figcaption></figure>{{end}}</div>{{end}}{{end}}`,

	"search": `{{define "title"}}Search{{end}}{{define "content"}}<h1>Search</h1>
<form action="/search" method="get"><input type="search" name="q" value="{{.Query}}" aria-label="Name starts with"> <button>Find</button></form>
{{if .Query}}<h2>Users</h2><ul>{{range .Users}}<li><a href="/users/{{.ID}}">{{.Name}}</a></li>{{else}}<li class="mute">No user's name starts with “{{.Query}}”.</li>{{end}}</ul>
<h2>Teams</h2><ul>{{range .Teams}}<li><a href="/teams/{{.ID}}">{{.Name}}</a></li>{{else}}<li class="mute">No team's name starts with “{{.Query}}”.</li>{{end}}</ul>{{end}}{{end}}`,

	"error": `{{define "title"}}{{.Title}}{{end}}{{define "content"}}<h1>{{.Status}} {{.Title}}</h1><p>{{.Message}}</p><p><a href="/">The front page</a></p>{{end}}`,
}

type listView struct {
	Kind    Kind
	Entries []Entry
}

var templates = func() map[string]*template.Template {
	f := template.FuncMap{
		"mul100":  func(v float64) float64 { return 100 * v },
		"bytes64": func(v float64) string { return short(v) + "B" },
		"entries": func(k Kind, es []Entry) listView { return listView{k, es} },
	}
	for k, v := range funcs {
		f[k] = v
	}
	base := template.Must(template.New("layout").Funcs(f).Parse(layout))
	out := map[string]*template.Template{}
	for name, src := range pages {
		out[name] = template.Must(template.Must(base.Clone()).Parse(src))
	}
	return out
}()

func (s *site) render(w http.ResponseWriter, status int, page string, v any) {
	var buf bytes.Buffer
	if err := templates[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		s.cfg.Logger.Error("stats page", "page", page, "err", err)
		http.Error(w, "this page could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
