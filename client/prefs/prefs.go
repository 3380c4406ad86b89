// Package prefs holds the volunteer's computing preferences (DESIGN §7):
// when the client may compute and how much of the machine it may take. The
// defaults are BOINC's, so that people who know BOINC find what they expect.
// Prefs are plain data; the daemon applies them, `momonga prefs` edits them,
// and they live in prefs.json in the data directory.
package prefs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/momonga-project/momonga/internal/atomicfile"
)

// Prefs are the volunteer's preferences. JSON names are the keys of
// `momonga prefs set`; fields are only ever added.
type Prefs struct {
	RunIfUserActive    bool    `json:"run_if_user_active"`    // compute while the person uses the machine
	IdleMinutes        float64 `json:"idle_minutes"`          // start computing after this long without input
	SuspendCPUPercent  float64 `json:"suspend_cpu_percent"`   // suspend while other programs use more CPU than this (0: never)
	RunOnBattery       bool    `json:"run_on_battery"`        // compute on battery power
	CPUUsageLimit      float64 `json:"cpu_usage_limit"`       // per cent of the time tasks may run (duty cycle)
	MaxCPUsPercent     float64 `json:"max_cpus_percent"`      // per cent of the cores to use
	RAMBusyPercent     float64 `json:"ram_busy_percent"`      // memory tasks may hold while the machine is in use
	RAMIdlePercent     float64 `json:"ram_idle_percent"`      // memory tasks may hold while it is idle
	DiskMaxUsedPercent float64 `json:"disk_max_used_percent"` // of the data directory's disk, at most this much for momonga
	DiskMinFreeGB      float64 `json:"disk_min_free_gb"`      // always leave this much free on that disk
	CheckpointSeconds  float64 `json:"checkpoint_seconds"`    // checkpoint tasks at most this often
	WorkBufMinDays     float64 `json:"work_buf_min_days"`     // fetch work when less than this is queued
	WorkBufExtraDays   float64 `json:"work_buf_extra_days"`   // and then fetch this much more
	RunHours           string  `json:"run_hours"`             // "HH:MM-HH:MM" local time, "" for any time
}

// Defaults are BOINC's defaults.
func Defaults() Prefs {
	return Prefs{
		IdleMinutes:        3,
		SuspendCPUPercent:  25,
		CPUUsageLimit:      100,
		MaxCPUsPercent:     100,
		RAMBusyPercent:     50,
		RAMIdlePercent:     90,
		DiskMaxUsedPercent: 90,
		DiskMinFreeGB:      0.1,
		CheckpointSeconds:  60,
		WorkBufMinDays:     0.1,
		WorkBufExtraDays:   0.5,
	}
}

// Key describes one preference for `momonga prefs`.
type Key struct {
	Name     string
	Help     string
	Min, Max float64 // for numbers
	Kind     string  // "bool", "number" or "hours"
	field    func(p *Prefs) any
}

// Range is what a value must be, said for a person.
func (k Key) Range() string {
	switch k.Kind {
	case "bool":
		return "true or false"
	case "hours":
		return `"HH:MM-HH:MM" (24-hour local time, may wrap past midnight) or "" for any time`
	}
	return fmt.Sprintf("a number from %s to %s", fmtNum(k.Min), fmtNum(k.Max))
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// Keys lists every preference in the order `prefs show` prints them.
var Keys = []Key{
	{Name: "run_if_user_active", Kind: "bool", Help: "compute while the machine is in use", field: func(p *Prefs) any { return &p.RunIfUserActive }},
	{Name: "idle_minutes", Kind: "number", Min: 0, Max: 1440, Help: "minutes without keyboard or mouse input before computing", field: func(p *Prefs) any { return &p.IdleMinutes }},
	{Name: "suspend_cpu_percent", Kind: "number", Min: 0, Max: 100, Help: "suspend while other programs use more CPU than this per cent (0: never)", field: func(p *Prefs) any { return &p.SuspendCPUPercent }},
	{Name: "run_on_battery", Kind: "bool", Help: "compute on battery power", field: func(p *Prefs) any { return &p.RunOnBattery }},
	{Name: "cpu_usage_limit", Kind: "number", Min: 1, Max: 100, Help: "per cent of the time tasks may run", field: func(p *Prefs) any { return &p.CPUUsageLimit }},
	{Name: "max_cpus_percent", Kind: "number", Min: 1, Max: 100, Help: "per cent of the cores to use", field: func(p *Prefs) any { return &p.MaxCPUsPercent }},
	{Name: "ram_busy_percent", Kind: "number", Min: 1, Max: 100, Help: "per cent of memory tasks may hold while the machine is in use", field: func(p *Prefs) any { return &p.RAMBusyPercent }},
	{Name: "ram_idle_percent", Kind: "number", Min: 1, Max: 100, Help: "per cent of memory tasks may hold while it is idle", field: func(p *Prefs) any { return &p.RAMIdlePercent }},
	{Name: "disk_max_used_percent", Kind: "number", Min: 1, Max: 100, Help: "per cent of the data directory's disk momonga may use", field: func(p *Prefs) any { return &p.DiskMaxUsedPercent }},
	{Name: "disk_min_free_gb", Kind: "number", Min: 0, Max: 1e6, Help: "gigabytes to leave free on that disk", field: func(p *Prefs) any { return &p.DiskMinFreeGB }},
	{Name: "checkpoint_seconds", Kind: "number", Min: 1, Max: 86400, Help: "checkpoint tasks at most this often, in seconds", field: func(p *Prefs) any { return &p.CheckpointSeconds }},
	{Name: "work_buf_min_days", Kind: "number", Min: 0, Max: 10, Help: "fetch work when less than this many days of it are queued", field: func(p *Prefs) any { return &p.WorkBufMinDays }},
	{Name: "work_buf_extra_days", Kind: "number", Min: 0, Max: 10, Help: "then fetch this many days more", field: func(p *Prefs) any { return &p.WorkBufExtraDays }},
	{Name: "run_hours", Kind: "hours", Help: "compute only between these times of day", field: func(p *Prefs) any { return &p.RunHours }},
}

// Lookup finds a key by name.
func Lookup(name string) (Key, bool) {
	for _, k := range Keys {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

// ErrInvalid marks an unknown key or a value out of range.
var ErrInvalid = errors.New("invalid preference")

// Get returns a preference's value as `prefs show` prints it.
func (p Prefs) Get(name string) (string, error) {
	k, ok := Lookup(name)
	if !ok {
		return "", unknownKey(name)
	}
	switch v := k.field(&p).(type) {
	case *bool:
		return strconv.FormatBool(*v), nil
	case *float64:
		return fmtNum(*v), nil
	case *string:
		return *v, nil
	}
	panic("prefs: field of unknown type")
}

// Set changes one preference, refusing an unknown key or a value out of
// range with an error that gives the range.
func (p *Prefs) Set(name, value string) error {
	k, ok := Lookup(name)
	if !ok {
		return unknownKey(name)
	}
	bad := func() error {
		return fmt.Errorf("%w: %s = %q: must be %s", ErrInvalid, name, value, k.Range())
	}
	switch v := k.field(p).(type) {
	case *bool:
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return bad()
		}
		*v = b
	case *float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || f != f || f < k.Min || f > k.Max {
			return bad()
		}
		*v = f
	case *string:
		value = strings.TrimSpace(value)
		if _, err := ParseHours(value); err != nil {
			return bad()
		}
		*v = value
	}
	return nil
}

func unknownKey(name string) error {
	names := make([]string, len(Keys))
	for i, k := range Keys {
		names[i] = k.Name
	}
	return fmt.Errorf("%w: no preference is called %q; the keys are %s", ErrInvalid, name, strings.Join(names, ", "))
}

// Validate checks every preference against its range.
func (p Prefs) Validate() error {
	for _, k := range Keys {
		v, _ := p.Get(k.Name)
		q := p
		if err := q.Set(k.Name, v); err != nil {
			return err
		}
	}
	return nil
}

// Hours is a daily window of local time; From == To means all day.
type Hours struct {
	From, To time.Duration // since midnight
}

// ParseHours reads "HH:MM-HH:MM"; "" is all day.
func ParseHours(s string) (Hours, error) {
	if s == "" {
		return Hours{}, nil
	}
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return Hours{}, fmt.Errorf("%q is not HH:MM-HH:MM", s)
	}
	f, err1 := parseClock(from)
	t, err2 := parseClock(to)
	if err := errors.Join(err1, err2); err != nil {
		return Hours{}, fmt.Errorf("%q is not HH:MM-HH:MM: %w", s, err)
	}
	return Hours{From: f, To: t}, nil
}

func parseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Contains reports whether t's local time of day is inside the window. The
// window may wrap past midnight ("22:00-06:00").
func (h Hours) Contains(t time.Time) bool {
	if h.From == h.To {
		return true
	}
	tod := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second
	if h.From < h.To {
		return tod >= h.From && tod < h.To
	}
	return tod >= h.From || tod < h.To
}

// Hours is the RunHours window; a malformed one (refused by Set) is all day.
func (p Prefs) Hours() Hours {
	h, _ := ParseHours(p.RunHours)
	return h
}

// FileName is the preferences file in the data directory.
const FileName = "prefs.json"

// Load reads the preferences from dataDir, with defaults for every key the
// file leaves out, or the defaults when there is no file. A file that cannot
// be read or holds a value out of range is an error saying which.
func Load(dataDir string) (Prefs, error) {
	p := Defaults()
	path := filepath.Join(dataDir, FileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("read preferences: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return Defaults(), fmt.Errorf("%s is malformed (%v): fix it or remove it for the defaults", path, err)
	}
	if err := p.Validate(); err != nil {
		return Defaults(), fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Save writes the preferences to dataDir atomically.
func Save(dataDir string, p Prefs) error {
	if err := p.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dataDir, FileName), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save preferences: %w", err)
	}
	return nil
}
