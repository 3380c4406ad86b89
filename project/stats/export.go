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
	// Records returns records of kind numbered from `from` on and the
	// number to go on from (0 at the end).
	Records(ctx context.Context, kind Kind, from uint64) ([]Record, uint64, error)
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
		write func(w *bufio.Writer, r Record)
		count *int
	}{
		{Users, "user.gz", writeUser, &sum.Users},
		{Teams, "team.gz", writeTeam, &sum.Teams},
		{Hosts, "host.gz", writeHost, &sum.Hosts},
	} {
		err := writeGzip(create, t.file, string(t.kind), func(w *bufio.Writer) error {
			for from := uint64(1); ; {
				recs, next, err := src.Records(ctx, t.kind, from)
				if err != nil {
					return err
				}
				for _, r := range recs {
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
// around what body writes.
func writeGzip(create func(string) (io.WriteCloser, error), name, root string, body func(*bufio.Writer) error) error {
	f, err := create(name)
	if err != nil {
		return err
	}
	// The fastest level: XML this regular still shrinks about tenfold, and
	// a million hosts take seconds, not tens of them.
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	w := bufio.NewWriterSize(zw, 256<<10)
	w.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n<" + root + ">\n")
	err = body(w)
	w.WriteString("</" + root + ">\n")
	return errors.Join(err, w.Flush(), zw.Close(), f.Close())
}

// The writers below follow db_dump's layout, indentation included.

func writeUser(w *bufio.Writer, r Record) {
	w.WriteString("<user>\n")
	elem(w, " ", "id", num(r.Num))
	elemText(w, " ", "name", r.Name)
	elem(w, " ", "create_time", num(uint64(max(r.Created.Unix(), 0))))
	elem(w, " ", "total_credit", fixed(r.Credit))
	elem(w, " ", "expavg_credit", fixed(r.RAC))
	elem(w, " ", "expavg_time", unixTime(r.RACTime))
	elem(w, " ", "cpid", r.CPID)
	if r.Country != "" {
		elemText(w, " ", "country", r.Country)
	}
	if r.TeamNum != 0 {
		elem(w, " ", "teamid", num(r.TeamNum))
	}
	w.WriteString("</user>\n")
}

func writeTeam(w *bufio.Writer, r Record) {
	w.WriteString("<team>\n")
	elem(w, " ", "id", num(r.Num))
	elem(w, " ", "type", strconv.Itoa(r.Type))
	elemText(w, " ", "name", r.Name)
	elem(w, " ", "userid", num(r.UserNum))
	elem(w, " ", "total_credit", fixed(r.Credit))
	elem(w, " ", "expavg_credit", fixed(r.RAC))
	elem(w, " ", "expavg_time", unixTime(r.RACTime))
	if r.UserName != "" {
		elemText(w, "  ", "founder_name", r.UserName)
	}
	elem(w, " ", "create_time", num(uint64(max(r.Created.Unix(), 0))))
	if r.URL != "" {
		elemText(w, " ", "url", r.URL)
	}
	if r.Text != "" {
		elemText(w, "", "description", r.Text)
	}
	elemText(w, " ", "country", r.Country)
	w.WriteString("</team>\n")
}

func writeHost(w *bufio.Writer, r Record) {
	in := r.Info
	w.WriteString("<host>\n")
	elem(w, "    ", "id", num(r.Num))
	elem(w, "    ", "userid", num(r.UserNum))
	elem(w, "    ", "total_credit", fixed(r.Credit))
	elem(w, "    ", "expavg_credit", fixed(r.RAC))
	elem(w, "    ", "expavg_time", unixTime(r.RACTime))
	elemText(w, "    ", "p_vendor", in.CPUVendor)
	elemText(w, "    ", "p_model", in.CPUModel)
	elemText(w, "    ", "os_name", in.OS)
	elemText(w, "    ", "os_version", in.OSVersion)
	w.WriteString("    <misc><![CDATA[" + misc(r) + "]]></misc>\n")
	elem(w, "  ", "create_time", num(uint64(max(r.Created.Unix(), 0))))
	elem(w, "  ", "rpc_time", num(uint64(max(r.LastSeen.Unix(), 0))))
	elem(w, "  ", "timezone", strconv.Itoa(in.Timezone))
	elem(w, "  ", "ncpus", strconv.Itoa(in.CPUs))
	elem(w, "  ", "p_fpops", fixed(in.FLOPS))
	elem(w, "  ", "p_iops", fixed(in.IOPS))
	elem(w, "  ", "p_membw", fixed(in.MemBytesPerSec))
	elem(w, "  ", "m_nbytes", fixed(float64(in.MemoryBytes)))
	elem(w, "  ", "m_cache", fixed(0))
	elem(w, "  ", "m_swap", fixed(0))
	elem(w, "  ", "d_total", fixed(float64(in.DiskTotalBytes)))
	elem(w, "  ", "d_free", fixed(float64(in.DiskFreeBytes)))
	elem(w, "  ", "n_bwup", fixed(0))
	elem(w, "  ", "n_bwdown", fixed(0))
	elem(w, "  ", "avg_turnaround", fixed(r.Turnround))
	// What the host claims per CPU second: its benchmark in Cobblestones.
	elem(w, "  ", "credit_per_cpu_sec", fixed(in.FLOPS/credit.FLOPsPerCobblestone))
	elem(w, "  ", "host_cpid", r.CPID)
	w.WriteString("</host>\n")
}

// misc is db_dump's free-form host field: here what momonga measures that
// BOINC has no element for. Only digits, letters and a few marks, so that
// it cannot end its CDATA section.
func misc(r Record) string {
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
		elem(w, "    ", "nusers_total", strconv.Itoa(s.Users))
	}
	if s.Teams > 0 {
		elem(w, "    ", "nteams_total", strconv.Itoa(s.Teams))
	}
	if s.Hosts > 0 {
		elem(w, "    ", "nhosts_total", strconv.Itoa(s.Hosts))
	}
	if s.Credit > 0 {
		elem(w, "    ", "total_credit", fixed(s.Credit))
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
	w.WriteString(indent + "<" + name + ">" + value + "</" + name + ">\n")
}

// elemText writes text escaped: markup, quotes, and characters XML cannot
// carry (replaced by U+FFFD) never reach the file as they are.
func elemText(w *bufio.Writer, indent, name, value string) {
	w.WriteString(indent + "<" + name + ">")
	_ = xml.EscapeText(w, []byte(value))
	w.WriteString("</" + name + ">\n")
}

func num(n uint64) string { return strconv.FormatUint(n, 10) }

// fixed prints v as C's %f does: six decimals.
func fixed(v float64) string { return strconv.FormatFloat(finite(v), 'f', 6, 64) }

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

func unixTime(t time.Time) string {
	if t.IsZero() {
		return fixed(0)
	}
	return fixed(float64(t.UnixNano()) / 1e9)
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
