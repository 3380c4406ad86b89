// Package eventlog is the client's event log (DESIGN §7), as BOINC's: what
// the daemon did and why (tasks started, suspended and the reason,
// checkpoints, uploads, errors), kept in the data directory so that a
// volunteer can tell afterwards why a task waited or failed. It is bounded:
// one file that is rotated to a second when it is full, so it never holds
// more than two files' worth. `momonga log` and the local web page read it.
//
// Records are slog records written as JSON lines by a slog.Handler (Handler),
// so that the daemon logs once, through its *slog.Logger, to the terminal
// and the event log alike (slog.NewMultiHandler).
package eventlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Files in the data directory.
const (
	File    = "events.log"   // the current file
	OldFile = "events.log.1" // the one before, replaced at each rotation
)

// DefaultMaxBytes is the size at which the current file is rotated: the
// log holds at most twice this.
const DefaultMaxBytes = 1 << 20

// Log is the event log of a data directory, open for writing.
type Log struct {
	dir      string
	maxBytes int64

	mu   sync.Mutex
	f    *os.File
	size int64

	written atomic.Uint64 // records written, for readers that watch for news
}

// Open opens the event log of dir for appending; maxBytes <= 0 is
// DefaultMaxBytes.
func Open(dir string, maxBytes int64) (*Log, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	l := &Log{dir: dir, maxBytes: maxBytes}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) open() error {
	f, err := os.OpenFile(filepath.Join(l.dir, File), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("event log: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Write appends one record (one line, as slog's JSON handler writes it),
// rotating the file first when the line would take it past the bound.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, errors.New("event log closed")
	}
	if l.size > 0 && l.size+int64(len(p)) > l.maxBytes {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	l.written.Add(1)
	return n, err
}

func (l *Log) rotate() error {
	l.f.Close()
	l.f = nil
	if err := os.Rename(filepath.Join(l.dir, File), filepath.Join(l.dir, OldFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("event log: rotate: %w", err)
	}
	return l.open()
}

// Written counts the records written since Open: it changes when there is
// news to read.
func (l *Log) Written() uint64 { return l.written.Load() }

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Handler is a slog.Handler that writes records of level and above to the
// log.
func (l *Log) Handler(level slog.Leveler) slog.Handler {
	return slog.NewJSONHandler(l, &slog.HandlerOptions{Level: level})
}

// Entry is one record of the log.
type Entry struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"msg"`
	Attrs   []Attr    `json:"attrs,omitempty"` // in the order they were logged
}

// Attr is one key and value of an entry, the value as text.
type Attr struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Get is the value of key, or "".
func (e Entry) Get(key string) string {
	for _, a := range e.Attrs {
		if a.Key == key {
			return a.Value
		}
	}
	return ""
}

// String is the entry on one line, as `momonga log` prints it: time,
// level when it is not INFO, message, then key=value.
func (e Entry) String() string {
	var b strings.Builder
	b.WriteString(e.Time.Local().Format("2006-01-02 15:04:05"))
	if e.Level != "" && e.Level != "INFO" {
		b.WriteString(" " + e.Level)
	}
	b.WriteString(" " + e.Message)
	for _, a := range e.Attrs {
		v := a.Value
		if v == "" || strings.ContainsAny(v, " \t\"=") {
			v = fmt.Sprintf("%q", v)
		}
		b.WriteString(" " + a.Key + "=" + v)
	}
	return b.String()
}

// maxLine bounds one record: a longer line (not the daemon's) is skipped.
const maxLine = 64 << 10

// Read returns the last n entries (n <= 0: all) of dir's event log, oldest
// first. Lines that are not records are skipped: the log is for reading, and
// one damaged line must not hide the rest.
func Read(dir string, n int) ([]Entry, error) {
	var all []Entry
	for _, name := range []string{OldFile, File} {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("event log: %w", err)
		}
		all = append(all, parse(f)...)
		f.Close()
		if n > 0 && len(all) > n {
			all = append(all[:0], all[len(all)-n:]...)
		}
	}
	if n > 0 && len(all) > n {
		all = all[len(all)-n:]
	}
	return all, nil
}

func parse(r io.Reader) []Entry {
	var out []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	for sc.Scan() {
		if e, err := ParseLine(sc.Bytes()); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// ParseLine reads one record as slog's JSON handler writes it. Nested
// groups are flattened to "group.key".
func ParseLine(line []byte) (Entry, error) {
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	attrs, err := object(dec, "")
	if err != nil {
		return e, err
	}
	if dec.More() {
		return e, errors.New("trailing data after the record")
	}
	for _, a := range attrs {
		switch a.Key {
		case slog.TimeKey:
			e.Time, err = time.Parse(time.RFC3339Nano, a.Value)
			if err != nil {
				return e, fmt.Errorf("record time: %w", err)
			}
		case slog.LevelKey:
			e.Level = a.Value
		case slog.MessageKey:
			e.Message = a.Value
		default:
			e.Attrs = append(e.Attrs, a)
		}
	}
	if e.Time.IsZero() {
		return e, errors.New("a record without a time")
	}
	return e, nil
}

// object reads a JSON object's members in order, flattening nested objects.
func object(dec *json.Decoder, prefix string) ([]Attr, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("a record is a JSON object")
	}
	var out []Attr
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("malformed record")
		}
		key = prefix + key
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		raw = bytes.TrimSpace(raw)
		switch {
		case len(raw) > 0 && raw[0] == '{':
			inner, err := object(json.NewDecoder(bytes.NewReader(raw)), key+".")
			if err != nil {
				return nil, err
			}
			out = append(out, inner...)
		case len(raw) > 0 && raw[0] == '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, err
			}
			out = append(out, Attr{key, s})
		default:
			out = append(out, Attr{key, string(raw)})
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return out, nil
}

// Levels are the names --log-level takes, least first.
var Levels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// ParseLevel reads a --log-level value.
func ParseLevel(s string) (slog.Level, error) {
	if l, ok := Levels[strings.ToLower(s)]; ok {
		return l, nil
	}
	names := make([]string, 0, len(Levels))
	for k := range Levels {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return Levels[names[i]] < Levels[names[j]] })
	return 0, fmt.Errorf("log level %q: give one of %s", s, strings.Join(names, ", "))
}
