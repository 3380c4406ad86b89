package installers

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSystemdUserUnitQuotesPaths(t *testing.T) {
	unit, err := SystemdUserUnit(ServiceSpec{Exec: "/home/a b/bin/momonga", DataDir: `/home/a b/100% "data"$HOME`})
	if err != nil {
		t.Fatal(err)
	}
	want := `ExecStart="/home/a b/bin/momonga" run --data "/home/a b/100%% \"data\"$$HOME"`
	if !bytes.Contains(unit, []byte(want)) {
		t.Errorf("unit has no line %s:\n%s", want, unit)
	}
	verifyUnits(t, map[string][]byte{"momonga.service": unit})
}

func TestLaunchAgentIsAPropertyList(t *testing.T) {
	plist, err := LaunchAgent(ServiceSpec{Exec: "/Users/a&b/momonga", DataDir: "/Users/a&b/Library/Application Support/momonga", LogFile: "/tmp/<log>"})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Dict struct {
			Keys    []string `xml:"key"`
			Strings []string `xml:"string"`
			Array   struct {
				Strings []string `xml:"string"`
			} `xml:"array"`
		} `xml:"dict"`
	}
	if err := xml.Unmarshal(plist, &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, plist)
	}
	args := doc.Dict.Array.Strings
	if strings.Join(args, "|") != "/Users/a&b/momonga|run|--data|/Users/a&b/Library/Application Support/momonga" {
		t.Errorf("program arguments %q", args)
	}
	if !strings.Contains(strings.Join(doc.Dict.Strings, "|"), LaunchdLabel) || !strings.Contains(strings.Join(doc.Dict.Strings, "|"), "/tmp/<log>") {
		t.Errorf("label or log missing: %q", doc.Dict.Strings)
	}
	// The tarball's copy names no data directory: the client takes its
	// default for the person.
	plist, err = LaunchAgent(ServiceSpec{Exec: "/usr/local/bin/momonga"})
	if err != nil || bytes.Contains(plist, []byte("--data")) || bytes.Contains(plist, []byte("StandardErrorPath")) {
		t.Errorf("plist without a data directory: %v\n%s", err, plist)
	}
}

// TestClientUnitKeepsIdleDetection checks the system unit against what the
// client's idle sources need from a system service (client/idle): the input
// devices and the terminals under /dev (so no PrivateDevices nor a
// DevicePolicy), the system bus for logind's idle hint (AF_UNIX), and the
// input group (the package adds the service user to it, and systemd gives a
// service its user's groups); and that it is sandboxed and at the lowest
// priority as the issue asks.
func TestClientUnitKeepsIdleDetection(t *testing.T) {
	unit, err := Asset("systemd/momonga.service")
	if err != nil {
		t.Fatal(err)
	}
	settings := unitSettings(unit)
	for _, breaks := range []string{"PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectProc", "PrivateUsers", "MemoryDenyWriteExecute", "PrivateNetwork", "IPAddressDeny"} {
		if v, ok := settings[breaks]; ok {
			t.Errorf("%s=%s would hide what idle detection or the WebAssembly compiler needs", breaks, v)
		}
	}
	for key, want := range map[string]string{
		"User": "momonga", "Group": "momonga", "Nice": "19", "CPUSchedulingPolicy": "idle", "IOSchedulingClass": "idle",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "CapabilityBoundingSet": "",
		"SystemCallFilter": "@system-service", "StateDirectory": "momonga", "StateDirectoryMode": "0750",
		"ExecStart": "/usr/bin/momonga run --data /var/lib/momonga",
	} {
		if got, ok := settings[key]; !ok || got != want {
			t.Errorf("%s=%q, want %q", key, got, want)
		}
	}
	if !strings.Contains(settings["RestrictAddressFamilies"], "AF_UNIX") {
		t.Errorf("RestrictAddressFamilies=%s: logind's idle hint comes over the system bus, a unix socket", settings["RestrictAddressFamilies"])
	}
	for _, limit := range []string{"MemoryMax", "TasksMax"} {
		if settings[limit] == "" {
			t.Errorf("no %s", limit)
		}
	}
	var client Package
	for _, p := range Packages() {
		if p.Name == "momonga" {
			client = p
		}
	}
	if !strings.Contains(strings.Join(client.ExtraGroups, " "), "input") {
		t.Errorf("the service user joins %v, not the input group its idle detection reads /dev/input through", client.ExtraGroups)
	}
}

func unitSettings(unit []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(unit), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = v
		}
	}
	return out
}

func TestSystemUnitsVerify(t *testing.T) {
	units := map[string][]byte{}
	for _, p := range Packages() {
		for _, f := range p.Files {
			if strings.HasSuffix(f.Dst, ".service") {
				b, err := Asset(f.Asset)
				if err != nil {
					t.Fatal(err)
				}
				units[filepath.Base(f.Dst)] = bytes.ReplaceAll(b, []byte("/usr/bin/"), []byte("/bin/"))
			}
		}
	}
	if len(units) != 2 {
		t.Fatalf("units %v", len(units))
	}
	verifyUnits(t, units)
}

// verifyUnits runs systemd-analyze verify on units, with their programs
// replaced by /bin/true where they are not installed.
func verifyUnits(t *testing.T, units map[string][]byte) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd)")
	}
	dir := t.TempDir()
	var paths []string
	for name, body := range units {
		body = bytes.ReplaceAll(body, []byte(`"/home/a b/bin/momonga"`), []byte("/bin/true"))
		body = bytes.ReplaceAll(body, []byte("/bin/momonga-project "), []byte("/bin/true "))
		body = bytes.ReplaceAll(body, []byte("/bin/momonga "), []byte("/bin/true "))
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, paths...)...).CombinedOutput()
	// Users the units name do not exist here; anything else is a mistake.
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "Failed to resolve user") && !strings.Contains(line, "Failed to resolve group") &&
			!strings.Contains(line, "Cannot add dependency job") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
	if err != nil && len(out) == 0 {
		t.Errorf("systemd-analyze verify: %v", err)
	}
}

func TestScriptsAreShell(t *testing.T) {
	for _, p := range Packages() {
		for _, phase := range []string{PreInstall, PostInstall, PreRemove, PostRemove} {
			for _, def := range []string{"install", "upgrade", "remove"} {
				s, err := p.Script(phase, def)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(s, []byte("#!/bin/sh\n")) || !bytes.Contains(s, []byte("action="+def)) ||
					!bytes.Contains(s, []byte("user="+p.User)) || bytes.Contains(s, []byte("<no value>")) || bytes.Contains(s, []byte("{"+p.Name+" ")) {
					t.Errorf("%s %s (%s):\n%s", p.Name, phase, def, s)
				}
				cmd := exec.Command("sh", "-n")
				cmd.Stdin = bytes.NewReader(s)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s %s is not valid shell: %v %s", p.Name, phase, err, out)
				}
			}
		}
	}
}
