package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/installers"
)

// serviceManager installs the client as a service of this platform: a
// systemd user unit on Linux, a launchd agent on macOS, a Windows service.
// The packages do the same for the whole system; this is for a person
// without one.
type serviceManager interface {
	// Install writes the service and starts it; it says where it is.
	Install(spec installers.ServiceSpec) (string, error)
	Uninstall() (string, error)
	Status() (string, error)
	// DefaultDataDir is where the service keeps its data unless told.
	DefaultDataDir() string
}

var errNoServices = errors.New("momonga cannot install itself as a service on this system: start `momonga run` from your session's start-up programs instead")

func serviceCommand() *cli.Command {
	data := &cli.StringFlag{Name: "data", Usage: "data directory of the service's client (default: this platform's for the service)", EnvVars: []string{"MOMONGA_DATA"}}
	return &cli.Command{
		Name:  "service",
		Usage: "run the client as a service without a package: a systemd user unit, a launchd agent or a Windows service",
		Subcommands: []*cli.Command{
			{
				Name:  "install",
				Usage: "install the service and start it (it starts again at every log-in or boot)",
				Flags: []cli.Flag{data},
				Action: func(c *cli.Context) error {
					m, err := newServiceManager()
					if err != nil {
						return err
					}
					exe, err := os.Executable()
					if err != nil {
						return fmt.Errorf("find this program: %w", err)
					}
					if exe, err = filepath.EvalSymlinks(exe); err != nil {
						return fmt.Errorf("find this program: %w", err)
					}
					spec := serviceSpec(exe, c.String("data"), m.DefaultDataDir())
					msg, err := m.Install(spec)
					if err != nil {
						return err
					}
					fmt.Fprintln(c.App.Writer, msg)
					fmt.Fprintf(c.App.Writer, "the client keeps its data in %s; attach it with `momonga attach URL --data %s`\n", spec.DataDir, spec.DataDir)
					return nil
				},
			},
			serviceAction("uninstall", "stop the service and remove it (its data directory stays)", serviceManager.Uninstall),
			serviceAction("status", "say whether the service is installed and running", serviceManager.Status),
		},
	}
}

// serviceAction is a subcommand that asks the service manager one thing
// and prints its answer.
func serviceAction(name, usage string, do func(serviceManager) (string, error)) *cli.Command {
	return &cli.Command{
		Name:  name,
		Usage: usage,
		Action: func(c *cli.Context) error {
			m, err := newServiceManager()
			if err != nil {
				return err
			}
			msg, err := do(m)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, msg)
			return nil
		},
	}
}

// serviceSpec is what the service runs: this program on the data directory
// given, or the service's default one, as an absolute path (a service
// starts in another directory).
func serviceSpec(exe, data, def string) installers.ServiceSpec {
	if data == "" {
		data = def
	}
	if abs, err := filepath.Abs(data); err == nil {
		data = abs
	}
	return installers.ServiceSpec{Exec: exe, DataDir: data, LogFile: filepath.Join(data, "momonga.log")}
}
