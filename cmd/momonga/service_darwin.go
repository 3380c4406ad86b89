package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/momonga-project/momonga/installers"
)

// launchAgent manages the client as a launchd agent of the person:
// ~/Library/LaunchAgents/org.momonga.client.plist, run while they are
// logged in (which is when there is a person to watch for).
type launchAgent struct {
	plist   string
	dataDir string
}

func newServiceManager() (serviceManager, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, err
	}
	return &launchAgent{plist: filepath.Join(home, "Library", "LaunchAgents", installers.LaunchdLabel+".plist"), dataDir: dataDefaults.Run}, nil
}

func (l *launchAgent) DefaultDataDir() string { return l.dataDir }

func (l *launchAgent) target() string { return "gui/" + strconv.Itoa(os.Getuid()) }

func (l *launchAgent) Install(spec installers.ServiceSpec) (string, error) {
	plist, err := installers.LaunchAgent(spec)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(spec.DataDir, 0o700); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(l.plist), 0o755); err != nil {
		return "", err
	}
	_ = launchctl("bootout", l.target()+"/"+installers.LaunchdLabel) // an older one, if loaded
	if err := os.WriteFile(l.plist, plist, 0o644); err != nil {
		return "", err
	}
	if err := launchctl("bootstrap", l.target(), l.plist); err != nil {
		return "", err
	}
	return fmt.Sprintf("installed and started %s (a launchd agent: it runs while you are logged in)", l.plist), nil
}

func (l *launchAgent) Uninstall() (string, error) {
	if _, err := os.Stat(l.plist); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no momonga agent is installed (%s does not exist)", l.plist)
	}
	_ = launchctl("bootout", l.target()+"/"+installers.LaunchdLabel)
	if err := os.Remove(l.plist); err != nil {
		return "", err
	}
	return fmt.Sprintf("stopped and removed %s; the client's data stays where it was", l.plist), nil
}

func (l *launchAgent) Status() (string, error) {
	if _, err := os.Stat(l.plist); errors.Is(err, os.ErrNotExist) {
		return "not installed: `momonga service install` installs it", nil
	}
	out, err := exec.Command("launchctl", "print", l.target()+"/"+installers.LaunchdLabel).Output()
	if err != nil {
		return fmt.Sprintf("installed (%s), not loaded", l.plist), nil
	}
	state := "loaded"
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "state = "); ok {
			state = v
		}
	}
	return fmt.Sprintf("installed (%s): %s", l.plist, state), nil
}

func launchctl(args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command("launchctl", args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("launchctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
