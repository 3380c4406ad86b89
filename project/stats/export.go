package stats

import (
	"bufio"
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

	"github.com/klauspost/compress/gzip"

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

// ExportSource reads what an export writes, a slice at a time.
type ExportSource interface {
	// Records appends to dst records of kind numbered from `from` on and
	// returns them with the number to go on from (0 at the end).
	Records(ctx context.Context, kind Kind, from uint64, dst []Record) ([]Record, uint64, error)
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
	var sum ExportSummary
	now, err := src.Time(ctx)
	if err != nil {
		return sum, err
	}
	sum.Time = now
	for _, t := range []struct {
		kind  Kind
		file  string
		write func(w *bufio.Writer, r *Record)
		count *int
	}{
		{Users, "user.gz", writeUser, &sum.Users},
		{Teams, "team.gz", writeTeam, &sum.Teams},
		{Hosts, "host.gz", writeHost, &sum.Hosts},
	} {
		err := writeGzip(create, t.file, string(t.kind), func(w *bufio.Writer) error {
			var recs []Record
			for from := uint64(1); ; {
				var next uint64
				var err error
				recs, next, err = src.Records(ctx, t.kind, from, recs[:0])
				if err != nil {
					return err
				}
				for i := range recs {
					r := &recs[i]
					if !(r.Credit > 0) || t.kind == Hosts && r.UserNum == 0 {
						continue
					}
					*t.count++
					if t.kind == Users {
						sum.Credit += r.Credit
					}
					if !r.NoExport {
						t.write(w, r)
					}
				}
				if next == 0 {
					return nil
				}
				from = next
			}
		})
		if err != nil {
			return sum, fmt.Errorf("export %s: %w", t.file, err)
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
	w := bufio.NewWriter(f)
	writeTables(w, sum, apps)
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return sum, fmt.Errorf("export tables.xml: %w", err)
	}
	return sum, nil
}

// writeGzip writes one gzip file: the XML declaration, the root element
// around what body writes. Compression runs in a goroutine of its own, so
// that reading the state and writing XML go on meanwhile on another core.
func writeGzip(create func(string) (io.WriteCloser, error), name, root string, body func(*bufio.Writer) error) error {
	f, err := create(name)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	compressed := make(chan error, 1)
	go func() {
		// The fastest level: XML this regular still shrinks about
		// tenfold, and a million hosts take seconds, not tens of them.
		zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
		_, err := io.Copy(zw, pr)
		err = errors.Join(err, zw.Close())
		pr.CloseWithError(err)
		compressed <- err
	}()
	w := bufio.NewWriterSize(pw, 256<<10)
	w.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n<" + root + ">\n")
	err = body(w)
	w.WriteString("</" + root + ">\n")
	err = errors.Join(err, w.Flush())
	if err != nil {
		pw.CloseWithError(err)
	} else {
		pw.Close()
	}
	return errors.Join(err, <-compressed, f.Close())
}

// The writers below follow db_dump's layout, indentation included.

func writeUser(w *bufio.Writer, r *Record) {
	w.WriteString("<user>\n")
	elemNum(w, " ", "id", int64(r.Num))
	elemText(w, " ", "name", r.Name)
	elemNum(w, " ", "create_time", int64(uint64(max(r.Created.Unix(), 0))))
	elemFixed(w, " ", "total_credit", r.Credit)
	elemFixed(w, " ", "expavg_credit", r.RAC)
	elemFixed(w, " ", "expavg_time", unixSeconds(r.RACTime))
	elem(w, " ", "cpid", r.CPID)
	if r.Country != "" {
		elemText(w, " ", "country", r.Country)
	}
	if r.TeamNum != 0 {
		elemNum(w, " ", "teamid", int64(r.TeamNum))
	}
	w.WriteString("</user>\n")
}

func writeTeam(w *bufio.Writer, r *Record) {
	w.WriteString("<team>\n")
	elemNum(w, " ", "id", int64(r.Num))
	elemNum(w, " ", "type", int64(r.Type))
	elemText(w, " ", "name", r.Name)
	elemNum(w, " ", "userid", int64(r.UserNum))
	elemFixed(w, " ", "total_credit", r.Credit)
	elemFixed(w, " ", "expavg_credit", r.RAC)
	elemFixed(w, " ", "expavg_time", unixSeconds(r.RACTime))
	if r.UserName != "" {
		elemText(w, "  ", "founder_name", r.UserName)
	}
	elemNum(w, " ", "create_time", int64(uint64(max(r.Created.Unix(), 0))))
	if r.URL != "" {
		elemText(w, " ", "url", r.URL)
	}
	if r.Text != "" {
		elemText(w, "", "description", r.Text)
	}
	elemText(w, " ", "country", r.Country)
	w.WriteString("</team>\n")
}

func writeHost(w *bufio.Writer, r *Record) {
	in := &r.Info
	w.WriteString("<host>\n")
	elemNum(w, "    ", "id", int64(r.Num))
	elemNum(w, "    ", "userid", int64(r.UserNum))
	elemFixed(w, "    ", "total_credit", r.Credit)
	elemFixed(w, "    ", "expavg_credit", r.RAC)
	elemFixed(w, "    ", "expavg_time", unixSeconds(r.RACTime))
	elemText(w, "    ", "p_vendor", in.CPUVendor)
	elemText(w, "    ", "p_model", in.CPUModel)
	elemText(w, "    ", "os_name", in.OS)
	elemText(w, "    ", "os_version", in.OSVersion)
	w.WriteString("    <misc><![CDATA[" + misc(r) + "]]></misc>\n")
	elemNum(w, "  ", "create_time", int64(uint64(max(r.Created.Unix(), 0))))
	elemNum(w, "  ", "rpc_time", int64(uint64(max(r.LastSeen.Unix(), 0))))
	elemNum(w, "  ", "timezone", int64(in.Timezone))
	elemNum(w, "  ", "ncpus", int64(in.CPUs))
	elemFixed(w, "  ", "p_fpops", in.FLOPS)
	elemFixed(w, "  ", "p_iops", in.IOPS)
	elemFixed(w, "  ", "p_membw", in.MemBytesPerSec)
	elemFixed(w, "  ", "m_nbytes", float64(in.MemoryBytes))
	elemFixed(w, "  ", "m_cache", 0)
	elemFixed(w, "  ", "m_swap", 0)
	elemFixed(w, "  ", "d_total", float64(in.DiskTotalBytes))
	elemFixed(w, "  ", "d_free", float64(in.DiskFreeBytes))
	elemFixed(w, "  ", "n_bwup", 0)
	elemFixed(w, "  ", "n_bwdown", 0)
	elemFixed(w, "  ", "avg_turnaround", r.Turnround)
	// What the host claims per CPU second: its benchmark in Cobblestones.
	elemFixed(w, "  ", "credit_per_cpu_sec", in.FLOPS/credit.FLOPsPerCobblestone)
	elem(w, "  ", "host_cpid", r.CPID)
	w.WriteString("</host>\n")
}

// misc is db_dump's free-form host field: here what momonga measures that
// BOINC has no element for. Only digits, letters and a few marks, so that
// it cannot end its CDATA section.
func misc(r *Record) string {
	arch := strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			return c
		}
		return -1
	}, r.Info.Arch)
	return `{"arch":"` + arch + `","wasm_ops":` + strconv.FormatFloat(finite(r.Info.WasmOPS), 'f', 0, 64) + `}`
}

func writeTables(w *bufio.Writer, s ExportSummary, apps []string) {
	w.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n<tables>\n")
	elem(w, "    ", "update_time", strconv.FormatInt(s.Time.Unix(), 10))
	if s.Users > 0 {
		elemNum(w, "    ", "nusers_total", int64(s.Users))
	}
	if s.Teams > 0 {
		elemNum(w, "    ", "nteams_total", int64(s.Teams))
	}
	if s.Hosts > 0 {
		elemNum(w, "    ", "nhosts_total", int64(s.Hosts))
	}
	if s.Credit > 0 {
		elemFixed(w, "    ", "total_credit", s.Credit)
	}
	w.WriteString("    <applications>\n")
	for _, a := range apps {
		w.WriteString("        <application>\n")
		elemText(w, "            ", "name", a)
		w.WriteString("        </application>\n")
	}
	w.WriteString("    </applications>\n    <badges>\n    </badges>\n</tables>\n")
}

func elem(w *bufio.Writer, indent, name, value string) {
	startElem(w, indent, name)
	w.WriteString(value)
	endElem(w, name)
}

func startElem(w *bufio.Writer, indent, name string) {
	w.WriteString(indent)
	w.WriteByte('<')
	w.WriteString(name)
	w.WriteByte('>')
}

func endElem(w *bufio.Writer, name string) {
	w.WriteString("</")
	w.WriteString(name)
	w.WriteString(">\n")
}

// elemFixed writes v as C's %f does (six decimals), elemNum an integer.
func elemFixed(w *bufio.Writer, indent, name string, v float64) {
	startElem(w, indent, name)
	w.Write(strconv.AppendFloat(w.AvailableBuffer(), finite(v), 'f', 6, 64))
	endElem(w, name)
}

func elemNum(w *bufio.Writer, indent, name string, n int64) {
	startElem(w, indent, name)
	w.Write(strconv.AppendInt(w.AvailableBuffer(), n, 10))
	endElem(w, name)
}

// elemText writes text escaped: markup, quotes, and characters XML cannot
// carry (replaced by U+FFFD) never reach the file as they are.
func elemText(w *bufio.Writer, indent, name, value string) {
	startElem(w, indent, name)
	if plain(value) {
		w.WriteString(value)
	} else {
		_ = xml.EscapeText(w, []byte(value))
	}
	endElem(w, name)
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
