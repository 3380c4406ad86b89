package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/momonga-project/momonga/installers"
)

// systemdUser manages the client as a systemd user service:
// ~/.config/systemd/user/momonga.service, run by the person's own service
// manager while they are logged in (or always, after `loginctl
// enable-linger`).
type systemdUser struct {
	unitPath string
	dataDir  string
}

const systemUnit = "/usr/lib/systemd/system/momonga.service"

func newServiceManager() (serviceManager, error) {
	if _, err := exec.LookPath("systemctl"); err != nil {
		return nil, errNoServices
	}
	config := os.Getenv("XDG_CONFIG_HOME")
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(config) {
		config = filepath.Join(home, ".config")
	}
	return &systemdUser{unitPath: filepath.Join(config, "systemd", "user", serviceName+".service"), dataDir: dataDefaults.Run}, nil
}

func (s *systemdUser) DefaultDataDir() string { return s.dataDir }

func (s *systemdUser) Install(spec installers.ServiceSpec) (string, error) {
	if _, err := os.Stat(systemUnit); err == nil {
		return "", fmt.Errorf("the momonga package runs the client as a system service already (`systemctl status momonga`): a second client would only compete with it. Use that one (`momonga status`), or remove the package first")
	}
	unit, err := installers.SystemdUserUnit(spec)
	if err != nil {
		return "", err
	}
	// Without the person's service manager nothing is written.
	if err := systemctlUser("show-environment"); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(s.unitPath), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(s.unitPath, unit, 0o644); err != nil {
		return "", err
	}
	if err := systemctlUser("daemon-reload"); err != nil {
		return "", err
	}
	if err := systemctlUser("enable", "--now", serviceName+".service"); err != nil {
		return "", err
	}
	return fmt.Sprintf("installed and started %s (a systemd user service: it runs while you are logged in; `loginctl enable-linger` keeps it running when you are not)", s.unitPath), nil
}

func (s *systemdUser) Uninstall() (string, error) {
	if _, err := os.Stat(s.unitPath); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no momonga user service is installed (%s does not exist)", s.unitPath)
	}
	if err := systemctlUser("disable", "--now", serviceName+".service"); err != nil {
		return "", err
	}
	if err := os.Remove(s.unitPath); err != nil {
		return "", err
	}
	_ = systemctlUser("daemon-reload")
	return fmt.Sprintf("stopped and removed %s; the client's data stays where it was", s.unitPath), nil
}

func (s *systemdUser) Status() (string, error) {
	if _, err := os.Stat(s.unitPath); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(systemUnit); err == nil {
			state, _ := exec.Command("systemctl", "is-active", serviceName+".service").Output()
			return fmt.Sprintf("the system service (from the momonga package): %s", strings.TrimSpace(string(state))), nil
		}
		return "not installed: `momonga service install` installs it", nil
	}
	state, _ := exec.Command("systemctl", "--user", "is-active", serviceName+".service").Output()
	return fmt.Sprintf("installed (%s): %s", s.unitPath, strings.TrimSpace(string(state))), nil
}

func systemctlUser(args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command("systemctl", append([]string{"--user"}, args...)...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("systemctl --user %s: %v: %s (a systemd user session is needed: log in to a desktop or over ssh, not with su)",
			strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
