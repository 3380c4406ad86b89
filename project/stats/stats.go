// Package stats serves the project's public stats page: batches and their
// progress, users, teams and hosts with the credit they earned, as
// server-rendered HTML, as JSON and as BOINC's XML exports (DESIGN §9).
package stats

import (
	"encoding/json"
	"html/template"
	"net/http"

	wu "github.com/momonga-project/momonga/workunits"
)

// Handler serves / (HTML), /api/status (JSON) and /stats/{user,team,host}.gz
// (BOINC's exports) from status.
func Handler(status func() wu.StatusReply) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats/{file}", serveExport(status))
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(status())
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, status()); err != nil {
			http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		}
	})
	return mux
}

var page = template.Must(template.New("stats").Funcs(template.FuncMap{
	"pct": func(n, total int) float64 {
		if total == 0 {
			return 0
		}
		return 100 * float64(n) / float64(total)
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Project}} · momonga</title>
<meta http-equiv="refresh" content="5">
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}
table{border-collapse:collapse;width:100%;margin-bottom:2em}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd}
td.n{text-align:right;font-variant-numeric:tabular-nums}
</style></head><body>
<h1>{{.Project}}</h1>
<p>Scheduler time {{.Now.Format "2006-01-02 15:04:05 MST"}}, log entry {{.Applied}}.</p>
<h2>Batches</h2>
<table><tr><th>Batch</th><th>App</th><th>Progress</th><th>Units</th><th>Valid</th><th>Error</th><th>Cancelled</th><th>Pending</th></tr>
{{range .Batches}}<tr><td>{{.Name}}</td><td>{{.App}}</td>
<td><svg width="200" height="12" role="img" aria-label="{{pct .Valid .Units | printf "%.0f"}}% valid"><rect width="200" height="12" fill="#eee"/><rect width="{{pct .Valid .Units | printf "%.1f"}}%" height="12" fill="#3a7"/></svg></td>
<td class="n">{{.Units}}</td><td class="n">{{.Valid}}</td><td class="n">{{.Errored}}</td><td class="n">{{.Cancelled}}</td><td class="n">{{.Pending}}</td></tr>
{{else}}<tr><td colspan="7">No batches yet.</td></tr>{{end}}
</table>
{{if .Users}}<h2>Users</h2>
<p>Credit in Cobblestones; recent average credit (RAC) per day, halving every week without new credit.</p>
<table><tr><th>User</th><th>Team</th><th>Hosts</th><th>Credit</th><th>RAC</th></tr>
{{range .Users}}<tr><td>{{.Name}}</td><td>{{.Team}}</td><td class="n">{{.Hosts}}</td><td class="n">{{printf "%.2f" .Credit}}</td><td class="n">{{printf "%.2f" .RAC}}</td></tr>
{{end}}</table>{{end}}
{{if .Teams}}<h2>Teams</h2>
<table><tr><th>Team</th><th>Founder</th><th>Members</th><th>Credit</th><th>RAC</th></tr>
{{range .Teams}}<tr><td>{{.Name}}</td><td>{{.Founder}}</td><td class="n">{{.Members}}</td><td class="n">{{printf "%.2f" .Credit}}</td><td class="n">{{printf "%.2f" .RAC}}</td></tr>
{{end}}</table>{{end}}
<h2>Hosts</h2>
<table><tr><th>Host</th><th>Name</th><th>User</th><th>CPUs</th><th>Running</th><th>Valid</th><th>Invalid</th><th>Lost</th><th>Credit</th><th>RAC</th></tr>
{{range .Hosts}}<tr><td>{{.ID}}</td><td>{{.Info.Name}}</td><td>{{.User}}</td><td class="n">{{.Info.CPUs}}</td><td class="n">{{.Running}}</td>
<td class="n">{{.Valid}}</td><td class="n">{{.Invalid}}</td><td class="n">{{.Lost}}</td><td class="n">{{printf "%.2f" .Credit}}</td><td class="n">{{printf "%.2f" .RAC}}</td></tr>
{{else}}<tr><td colspan="10">No hosts yet.</td></tr>{{end}}
</table>
<p><a href="/api/status">JSON</a> · BOINC exports: <a href="/stats/user.gz">user.gz</a>, <a href="/stats/team.gz">team.gz</a>, <a href="/stats/host.gz">host.gz</a></p>
</body></html>
`))
