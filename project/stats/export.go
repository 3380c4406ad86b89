package stats

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/momonga-project/momonga/project/credit"
	"github.com/momonga-project/momonga/project/sched"
)

// The statistics exports (DESIGN §9): user.gz, team.gz, host.gz and
// tables.xml, written as BOINC's db_dump writes them with its default
// specification (sched/db_dump.cpp, sched/db_dump_spec.xml), so that the
// sites that gather BOINC projects' statistics read them unchanged: the
// same elements in the same order and layout, integer ids, numbers printed
// as C's %f, users' cpid = md5(cross-project id + e-mail address), hosts
// with their details. As db_dump does, they list only accounts with
// credit, hosts only of a user, and leave out users who chose not to be
// exported, with their hosts (the totals in tables.xml still count them).
// E-mail addresses never leave the scheduler.

// ExportFiles are the files an export writes, in the order it writes them.
var ExportFiles = []string{"user.gz", "team.gz", "host.gz", "tables.xml"}

// Record is a host, user or team with its credit, as an export writes it.
type Record struct {
	sched.Record
	Credit  float64
	RAC     float64   // the recent average credit as of RACTime
	RACTime time.Time // zero: never credited
}

// ExportSource reads what an export writes, a slice at a time, several
// slices at once from as many goroutines.
type ExportSource interface {
	// Records appends to dst the records of kind numbered from `from` up
	// to `to` (not included), and reports whether any are numbered `to`
	// or more.
	Records(ctx context.Context, kind Kind, from, to uint64, dst []Record) ([]Record, bool, error)
	ExportApps(ctx context.Context) ([]string, error)
	Time(ctx context.Context) (time.Time, error)
}

// ExportSummary is what an export wrote: tables.xml's totals.
type ExportSummary struct {
	Time                time.Time
	Users, Teams, Hosts int
	Credit              float64 // of the users
}

// Export writes the four files through create, each closed before the
// next is made. The update time in tables.xml is the scheduler's.
func Export(ctx context.Context, src ExportSource, create func(name string) (io.WriteCloser, error)) (ExportSummary, error) {
	return export(ctx, src, create, exportSlice)
}

// export reads the records slice numbers at a time.
func export(ctx context.Context, src ExportSource, create func(name string) (io.WriteCloser, error), slice uint64) (ExportSummary, error) {
	var sum ExportSummary
	now, err := src.Time(ctx)
	if err != nil {
		return sum, err
	}
	sum.Time = now
	for _, t := range []struct {
		kind  Kind
		file  string
		write func([]byte, *Record) []byte
		count *int
	}{
		{Users, "user.gz", appendUser, &sum.Users},
		{Teams, "team.gz", appendTeam, &sum.Teams},
		{Hosts, "host.gz", appendHost, &sum.Hosts},
	} {
		f, err := create(t.file)
		if err != nil {
			return sum, fmt.Errorf("export %s: %w", t.file, err)
		}
		var credit float64
		*t.count, credit, err = exportFile(ctx, src, f, t.kind, t.write, slice)
		if err = errors.Join(err, f.Close()); err != nil {
			return sum, fmt.Errorf("export %s: %w", t.file, err)
		}
		if t.kind == Users {
			sum.Credit = credit
		}
	}
	apps, err := src.ExportApps(ctx)
	if err != nil {
		return sum, err
	}
	f, err := create("tables.xml")
	if err != nil {
		return sum, err
	}
	_, err = f.Write(appendTables(nil, sum, apps))
	if err := errors.Join(err, f.Close()); err != nil {
		return sum, fmt.Errorf("export tables.xml: %w", err)
	}
	return sum, nil
}

// exported reports whether r is counted in tables.xml: db_dump's accounts
// with credit, and hosts only of a user.
func exported(kind Kind, r *Record) bool {
	return r.Credit > 0 && !(kind == Hosts && r.UserNum == 0)
}

// The writers below follow db_dump's layout, indentation included.

func appendUser(b []byte, r *Record) []byte {
	b = append(b, "<user>\n"...)
	b = elemNum(b, " ", "id", int64(r.Num))
	b = elemText(b, " ", "name", r.Name)
	b = elemNum(b, " ", "create_time", int64(uint64(max(r.Created.Unix(), 0))))
	b = elemFixed(b, " ", "total_credit", r.Credit)
	b = elemFixed(b, " ", "expavg_credit", r.RAC)
	b = elemFixed(b, " ", "expavg_time", unixSeconds(r.RACTime))
	b = elem(b, " ", "cpid", r.CPID)
	if r.Country != "" {
		b = elemText(b, " ", "country", r.Country)
	}
	if r.TeamNum != 0 {
		b = elemNum(b, " ", "teamid", int64(r.TeamNum))
	}
	return append(b, "</user>\n"...)
}

func appendTeam(b []byte, r *Record) []byte {
	b = append(b, "<team>\n"...)
	b = elemNum(b, " ", "id", int64(r.Num))
	b = elemNum(b, " ", "type", int64(r.Type))
	b = elemText(b, " ", "name", r.Name)
	b = elemNum(b, " ", "userid", int64(r.UserNum))
	b = elemFixed(b, " ", "total_credit", r.Credit)
	b = elemFixed(b, " ", "expavg_credit", r.RAC)
	b = elemFixed(b, " ", "expavg_time", unixSeconds(r.RACTime))
	if r.UserName != "" {
		b = elemText(b, "  ", "founder_name", r.UserName)
	}
	b = elemNum(b, " ", "create_time", int64(uint64(max(r.Created.Unix(), 0))))
	if r.URL != "" {
		b = elemText(b, " ", "url", r.URL)
	}
	if r.Text != "" {
		b = elemText(b, "", "description", r.Text)
	}
	b = elemText(b, " ", "country", r.Country)
	return append(b, "</team>\n"...)
}

func appendHost(b []byte, r *Record) []byte {
	in := &r.Info
	b = append(b, "<host>\n"...)
	b = elemNum(b, "    ", "id", int64(r.Num))
	b = elemNum(b, "    ", "userid", int64(r.UserNum))
	b = elemFixed(b, "    ", "total_credit", r.Credit)
	b = elemFixed(b, "    ", "expavg_credit", r.RAC)
	b = elemFixed(b, "    ", "expavg_time", unixSeconds(r.RACTime))
	b = elemText(b, "    ", "p_vendor", in.CPUVendor)
	b = elemText(b, "    ", "p_model", in.CPUModel)
	b = elemText(b, "    ", "os_name", in.OS)
	b = elemText(b, "    ", "os_version", in.OSVersion)
	b = append(b, "    <misc><![CDATA["...)
	b = appendMisc(b, r)
	b = append(b, "]]></misc>\n"...)
	b = elemNum(b, "  ", "create_time", int64(uint64(max(r.Created.Unix(), 0))))
	b = elemNum(b, "  ", "rpc_time", int64(uint64(max(r.LastSeen.Unix(), 0))))
	b = elemNum(b, "  ", "timezone", int64(in.Timezone))
	b = elemNum(b, "  ", "ncpus", int64(in.CPUs))
	b = elemFixed(b, "  ", "p_fpops", in.FLOPS)
	b = elemFixed(b, "  ", "p_iops", in.IOPS)
	b = elemFixed(b, "  ", "p_membw", in.MemBytesPerSec)
	b = elemFixed(b, "  ", "m_nbytes", float64(in.MemoryBytes))
	b = elemFixed(b, "  ", "m_cache", 0)
	b = elemFixed(b, "  ", "m_swap", 0)
	b = elemFixed(b, "  ", "d_total", float64(in.DiskTotalBytes))
	b = elemFixed(b, "  ", "d_free", float64(in.DiskFreeBytes))
	b = elemFixed(b, "  ", "n_bwup", 0)
	b = elemFixed(b, "  ", "n_bwdown", 0)
	b = elemFixed(b, "  ", "avg_turnaround", r.Turnround)
	// What the host claims per CPU second: its benchmark in Cobblestones.
	b = elemFixed(b, "  ", "credit_per_cpu_sec", in.FLOPS/credit.FLOPsPerCobblestone)
	b = elem(b, "  ", "host_cpid", r.CPID)
	return append(b, "</host>\n"...)
}

// appendMisc appends db_dump's free-form host field: here what momonga
// measures that BOINC has no element for. Only ASCII digits, letters and a
// few marks, so that it cannot end its CDATA section.
func appendMisc(b []byte, r *Record) []byte {
	b = append(b, `{"arch":"`...)
	for i := 0; i < len(r.Info.Arch); i++ {
		if c := r.Info.Arch[i]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b = append(b, c)
		}
	}
	b = append(b, `","wasm_ops":`...)
	b = strconv.AppendFloat(b, finite(r.Info.WasmOPS), 'f', 0, 64)
	return append(b, '}')
}

func appendTables(b []byte, s ExportSummary, apps []string) []byte {
	b = append(b, `<?xml version="1.0" encoding="utf-8"?>`+"\n<tables>\n"...)
	b = elemNum(b, "    ", "update_time", s.Time.Unix())
	if s.Users > 0 {
		b = elemNum(b, "    ", "nusers_total", int64(s.Users))
	}
	if s.Teams > 0 {
		b = elemNum(b, "    ", "nteams_total", int64(s.Teams))
	}
	if s.Hosts > 0 {
		b = elemNum(b, "    ", "nhosts_total", int64(s.Hosts))
	}
	if s.Credit > 0 {
		b = elemFixed(b, "    ", "total_credit", s.Credit)
	}
	b = append(b, "    <applications>\n"...)
	for _, a := range apps {
		b = append(b, "        <application>\n"...)
		b = elemText(b, "            ", "name", a)
		b = append(b, "        </application>\n"...)
	}
	return append(b, "    </applications>\n    <badges>\n    </badges>\n</tables>\n"...)
}

func elem(b []byte, indent, name, value string) []byte {
	b = startElem(b, indent, name)
	b = append(b, value...)
	return endElem(b, name)
}

func startElem(b []byte, indent, name string) []byte {
	b = append(b, indent...)
	b = append(b, '<')
	b = append(b, name...)
	return append(b, '>')
}

func endElem(b []byte, name string) []byte {
	b = append(b, "</"...)
	b = append(b, name...)
	return append(b, ">\n"...)
}

// elemFixed writes v as C's %f does (six decimals), elemNum an integer.
func elemFixed(b []byte, indent, name string, v float64) []byte {
	b = startElem(b, indent, name)
	b = strconv.AppendFloat(b, finite(v), 'f', 6, 64)
	return endElem(b, name)
}

func elemNum(b []byte, indent, name string, n int64) []byte {
	b = startElem(b, indent, name)
	b = strconv.AppendInt(b, n, 10)
	return endElem(b, name)
}

// elemText writes text escaped: markup, quotes, and characters XML cannot
// carry (replaced by U+FFFD) never reach the file as they are.
func elemText(b []byte, indent, name, value string) []byte {
	b = startElem(b, indent, name)
	if plain(value) {
		b = append(b, value...)
	} else {
		w := appender{b}
		_ = xml.EscapeText(&w, []byte(value))
		b = w.b
	}
	return endElem(b, name)
}

// appender is an io.Writer that appends to a slice.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// plain reports whether s needs no escaping: printable ASCII without
// markup or quotes, as most names are.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '<' || c == '>' || c == '&' || c == '"' || c == '\'' {
			return false
		}
	}
	return true
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// ExportDir writes an export into root, as a directory of its own made
// atomically current: the files are written into a new directory, which
// then replaces root/current (a symbolic link) in one rename, so that a
// reader sees the whole of one export or of the next. The export before
// stays until the one after it.
func ExportDir(ctx context.Context, src ExportSource, root string) (ExportSummary, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return ExportSummary{}, fmt.Errorf("stats directory: %w", err)
	}
	dir, err := os.MkdirTemp(root, "export-")
	if err != nil {
		return ExportSummary{}, fmt.Errorf("stats directory: %w", err)
	}
	sum, err := Export(ctx, src, func(name string) (io.WriteCloser, error) {
		return os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	})
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		os.RemoveAll(dir)
		return sum, err
	}
	old, _ := os.Readlink(filepath.Join(root, "current"))
	link := filepath.Join(root, ".current-"+filepath.Base(dir))
	if err := os.Symlink(filepath.Base(dir), link); err != nil {
		os.RemoveAll(dir)
		return sum, fmt.Errorf("stats directory: %w", err)
	}
	if err := os.Rename(link, filepath.Join(root, "current")); err != nil {
		os.Remove(link)
		os.RemoveAll(dir)
		return sum, fmt.Errorf("stats directory: %w", err)
	}
	// Keep the export before this one (a reader may still have its files
	// open); remove older ones.
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "export-") && n != filepath.Base(dir) && n != old {
			os.RemoveAll(filepath.Join(root, n))
		}
	}
	return sum, nil
}

// CurrentExport is the directory holding root's current export, or "" when
// there is none yet.
func CurrentExport(root string) string {
	if root == "" {
		return ""
	}
	target, err := os.Readlink(filepath.Join(root, "current"))
	if err != nil || strings.Contains(target, "/") {
		return ""
	}
	return filepath.Join(root, target)
}
