package installers

import (
	"bytes"
	"html"
	"strings"
	"text/template"
)

// ServiceSpec is a client service for one person, as `momonga service
// install` writes it.
type ServiceSpec struct {
	Exec    string // the momonga executable
	DataDir string
	LogFile string // launchd: where the client's messages go
}

// LaunchdLabel names the launchd agent.
const LaunchdLabel = "org.momonga.client"

// SystemdUserUnit is the systemd user unit that runs the client for the
// person: ~/.config/systemd/user/momonga.service.
func SystemdUserUnit(s ServiceSpec) ([]byte, error) {
	s = ServiceSpec{Exec: systemdQuote(s.Exec), DataDir: systemdQuote(s.DataDir)}
	return render("systemd/momonga-user.service", s)
}

// systemdQuote makes s one argument of a unit's command line: quoted, with
// systemd's specifiers (%) and variables ($) taken literally.
func systemdQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "$", "$$")
	return `"` + r.Replace(s) + `"`
}

// LaunchAgent is the launchd property list that runs the client for the
// person: ~/Library/LaunchAgents/org.momonga.client.plist.
func LaunchAgent(s ServiceSpec) ([]byte, error) {
	// Values in a property list are XML text.
	s = ServiceSpec{Exec: html.EscapeString(s.Exec), DataDir: html.EscapeString(s.DataDir), LogFile: html.EscapeString(s.LogFile)}
	return render("launchd/"+LaunchdLabel+".plist", s)
}

func render(name string, data any) ([]byte, error) {
	t, err := template.ParseFS(assets, name)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ArchiveReadme is README.txt of the release archive for an operating
// system: how to install what is in it.
func ArchiveReadme(goos string) ([]byte, error) { return render("archive/README.txt", goos) }
