package prefs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreBOINCs(t *testing.T) {
	p := Defaults()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"run_if_user_active": "false", "idle_minutes": "3", "suspend_cpu_percent": "25", "run_on_battery": "false",
		"cpu_usage_limit": "100", "max_cpus_percent": "100", "ram_busy_percent": "50", "ram_idle_percent": "90",
		"disk_max_used_percent": "90", "disk_min_free_gb": "0.1", "checkpoint_seconds": "60",
		"work_buf_min_days": "0.1", "work_buf_extra_days": "0.5", "run_hours": "",
	}
	for k, v := range want {
		if got, err := p.Get(k); err != nil || got != v {
			t.Errorf("%s = %q, %v; want %q", k, got, err, v)
		}
	}
	if len(Keys) != len(want) {
		t.Errorf("%d keys, test knows %d", len(Keys), len(want))
	}
}

func TestSetRefusesOutOfRangeWithTheRange(t *testing.T) {
	p := Defaults()
	for _, c := range []struct{ key, value, says string }{
		{"cpu_usage_limit", "0", "from 1 to 100"},
		{"cpu_usage_limit", "101", "from 1 to 100"},
		{"idle_minutes", "-1", "from 0 to 1440"},
		{"idle_minutes", "NaN", "from 0 to 1440"},
		{"run_on_battery", "maybe", "true or false"},
		{"run_hours", "8-18", "HH:MM-HH:MM"},
		{"run_hours", "25:00-06:00", "HH:MM-HH:MM"},
		{"no_such_key", "1", "the keys are run_if_user_active"},
	} {
		err := p.Set(c.key, c.value)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("set %s %s: %v; want an error saying %q", c.key, c.value, err, c.says)
		}
	}
	if p != Defaults() {
		t.Errorf("refused values changed the prefs: %+v", p)
	}
	for _, c := range [][2]string{{"cpu_usage_limit", "50"}, {"run_on_battery", "true"}, {"run_hours", "22:00-06:30"}, {"idle_minutes", "0.5"}} {
		if err := p.Set(c[0], c[1]); err != nil {
			t.Errorf("set %s %s: %v", c[0], c[1], err)
		}
		if got, _ := p.Get(c[0]); got != c[1] {
			t.Errorf("%s = %q after setting %q", c[0], got, c[1])
		}
	}
}

func TestHours(t *testing.T) {
	day := func(h, m int) time.Time { return time.Date(2025, 3, 1, h, m, 0, 0, time.Local) }
	for _, c := range []struct {
		window string
		at     time.Time
		in     bool
	}{
		{"", day(3, 0), true},
		{"08:00-18:00", day(8, 0), true},
		{"08:00-18:00", day(17, 59), true},
		{"08:00-18:00", day(18, 0), false},
		{"08:00-18:00", day(7, 59), false},
		{"22:00-06:00", day(23, 0), true},
		{"22:00-06:00", day(5, 59), true},
		{"22:00-06:00", day(12, 0), false},
	} {
		h, err := ParseHours(c.window)
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Contains(c.at); got != c.in {
			t.Errorf("%q contains %s: %v", c.window, c.at.Format("15:04"), got)
		}
	}
}

func TestLoadSave(t *testing.T) {
	dir := t.TempDir()
	p, err := Load(dir)
	if err != nil || p != Defaults() {
		t.Fatalf("no file: %+v, %v", p, err)
	}
	p.CPUUsageLimit = 40
	if err := Save(dir, p); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(dir); err != nil || got != p {
		t.Fatalf("reloaded %+v, %v", got, err)
	}
	if st, _ := os.Stat(filepath.Join(dir, FileName)); st.Mode().Perm() != 0o600 {
		t.Errorf("prefs file mode %v", st.Mode())
	}
	os.WriteFile(filepath.Join(dir, FileName), []byte(`{"cpu_usage_limit": 500}`), 0o600)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "from 1 to 100") {
		t.Errorf("out of range in the file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, FileName), []byte(`{"idle_minutes": 10}`), 0o600)
	if got, err := Load(dir); err != nil || got.IdleMinutes != 10 || got.SuspendCPUPercent != 25 {
		t.Errorf("partial file: %+v, %v", got, err)
	}
}
