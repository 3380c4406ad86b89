package stats

import (
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"net/http"

	wu "github.com/momonga-project/momonga/workunits"
)

// BOINC's statistics exports (user.gz, team.gz, host.gz): the XML that
// BOINC's db_dump writes and stats sites read, with the fields momonga has.
// Recent average credit is given as of the scheduler's time, as BOINC gives
// expavg_credit as of expavg_time. E-mail addresses are never exported.

type xmlUser struct {
	XMLName     xml.Name `xml:"user"`
	ID          string   `xml:"id"`
	Name        string   `xml:"name"`
	CreateTime  int64    `xml:"create_time"`
	TotalCredit float64  `xml:"total_credit"`
	ExpavgCred  float64  `xml:"expavg_credit"`
	ExpavgTime  int64    `xml:"expavg_time"`
	TeamID      string   `xml:"teamid,omitempty"`
}

type xmlTeam struct {
	XMLName     xml.Name `xml:"team"`
	ID          string   `xml:"id"`
	Name        string   `xml:"name"`
	UserID      string   `xml:"userid,omitempty"`
	CreateTime  int64    `xml:"create_time"`
	TotalCredit float64  `xml:"total_credit"`
	ExpavgCred  float64  `xml:"expavg_credit"`
	ExpavgTime  int64    `xml:"expavg_time"`
	NUsers      int      `xml:"nusers"`
}

type xmlHost struct {
	XMLName     xml.Name `xml:"host"`
	ID          string   `xml:"id"`
	UserID      string   `xml:"userid,omitempty"`
	TotalCredit float64  `xml:"total_credit"`
	ExpavgCred  float64  `xml:"expavg_credit"`
	ExpavgTime  int64    `xml:"expavg_time"`
	OSName      string   `xml:"os_name"`
	PModel      string   `xml:"p_model"`
	NCPUs       int      `xml:"p_ncpus"`
	FPOps       float64  `xml:"p_fpops"`
}

// Export writes one of user.gz, team.gz or host.gz for st; ok is false
// for another name.
func Export(name string, st wu.StatusReply) (gz []byte, ok bool) {
	userID := map[string]string{}
	teamID := map[string]string{}
	for _, u := range st.Users {
		userID[u.Name] = u.ID
	}
	for _, t := range st.Teams {
		teamID[t.Name] = t.ID
	}
	now := st.Now.Unix()
	var root string
	var items []any
	switch name {
	case "user.gz":
		root = "users"
		for _, u := range st.Users {
			items = append(items, xmlUser{ID: u.ID, Name: u.Name, CreateTime: u.Created.Unix(), TotalCredit: u.Credit, ExpavgCred: u.RAC, ExpavgTime: now, TeamID: teamID[u.Team]})
		}
	case "team.gz":
		root = "teams"
		for _, t := range st.Teams {
			items = append(items, xmlTeam{ID: t.ID, Name: t.Name, UserID: userID[t.Founder], CreateTime: t.Created.Unix(), TotalCredit: t.Credit, ExpavgCred: t.RAC, ExpavgTime: now, NUsers: t.Members})
		}
	case "host.gz":
		root = "hosts"
		for _, h := range st.Hosts {
			items = append(items, xmlHost{ID: h.ID, UserID: userID[h.User], TotalCredit: h.Credit, ExpavgCred: h.RAC, ExpavgTime: now,
				OSName: h.Info.OS, PModel: h.Info.Arch, NCPUs: h.Info.CPUs, FPOps: h.Info.FLOPS})
		}
	default:
		return nil, false
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(xml.Header + "<" + root + ">\n"))
	enc := xml.NewEncoder(zw)
	enc.Indent("", " ")
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return nil, false
		}
		zw.Write([]byte("\n"))
	}
	zw.Write([]byte("</" + root + ">\n"))
	if err := zw.Close(); err != nil {
		return nil, false
	}
	return buf.Bytes(), true
}

func serveExport(status func() wu.StatusReply) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		gz, ok := Export(r.PathValue("file"), status())
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(gz)
	}
}
