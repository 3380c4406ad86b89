package eventlog

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRotatesAndStaysBounded(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, 4096)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(l.Handler(slog.LevelInfo))
	for i := range 500 {
		log.Info("task started", "task", fmt.Sprintf("t%03d", i), "project", "nats://p:4222")
	}
	log.Debug("not kept at info")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, name := range []string{File, OldFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 4096 {
			t.Errorf("%s holds %d bytes, over the bound of 4096", name, st.Size())
		}
		total += st.Size()
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "events*")); len(matches) != 2 {
		t.Errorf("files %v, want the current one and one old one", matches)
	}
	all, err := Read(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[len(all)-1].Get("task") != "t499" {
		t.Fatalf("the newest entry is not last: %v", all[len(all)-1:])
	}
	for i := 1; i < len(all); i++ {
		if all[i].Get("task") <= all[i-1].Get("task") {
			t.Fatalf("entries out of order at %d: %s after %s", i, all[i].Get("task"), all[i-1].Get("task"))
		}
	}
	last3, _ := Read(dir, 3)
	if len(last3) != 3 || last3[0].Get("task") != "t497" {
		t.Errorf("last 3: %v", last3)
	}
	if l.Written() != 500 {
		t.Errorf("written %d records, want 500", l.Written())
	}
}

func TestReopenAppends(t *testing.T) {
	dir := t.TempDir()
	for _, msg := range []string{"first run", "second run"} {
		l, err := Open(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		slog.New(l.Handler(slog.LevelInfo)).Warn(msg, "why", "a reason with spaces")
		l.Close()
	}
	all, _ := Read(dir, 0)
	if len(all) != 2 || all[0].Message != "first run" || all[1].Message != "second run" {
		t.Fatalf("entries %v", all)
	}
	s := all[1].String()
	if !strings.Contains(s, `WARN second run why="a reason with spaces"`) {
		t.Errorf("line %q", s)
	}
}

func TestDamagedLinesSkipped(t *testing.T) {
	dir := t.TempDir()
	content := `{"time":"2025-01-02T03:04:05Z","level":"INFO","msg":"ok","task":"t1","n":3,"g":{"a":"b"}}
not json at all
{"level":"INFO","msg":"no time"}
{"time":"2025-01-02T03:04:06Z","level":"ERROR","msg":"failed","err":"disk full"}
`
	if err := os.WriteFile(filepath.Join(dir, File), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	all, err := Read(dir, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("entries %v, want the two records", all)
	}
	want := []Attr{{"task", "t1"}, {"n", "3"}, {"g.a", "b"}}
	if fmt.Sprint(all[0].Attrs) != fmt.Sprint(want) {
		t.Errorf("attrs %v, want %v", all[0].Attrs, want)
	}
	if all[1].Level != "ERROR" || all[1].Get("err") != "disk full" {
		t.Errorf("second %+v", all[1])
	}
}

func TestParseLevel(t *testing.T) {
	if l, err := ParseLevel("DEBUG"); err != nil || l != slog.LevelDebug {
		t.Errorf("debug: %v %v", l, err)
	}
	if _, err := ParseLevel("loud"); err == nil || !strings.Contains(err.Error(), "debug, info, warn, error") {
		t.Errorf("unknown level: %v", err)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`{"time":"2025-01-02T03:04:05Z","level":"INFO","msg":"ok","task":"t1"}`))
	f.Add([]byte(`{"time":"2025-01-02T03:04:05Z","g":{"h":{"i":1}}}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseLine(line)
		if err == nil && e.Time.IsZero() {
			t.Fatal("accepted a record without a time")
		}
	})
}
