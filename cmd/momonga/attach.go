package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/client/daemon"
	"github.com/momonga-project/momonga/cmd/internal/cliutil"
)

func attachCommand() *cli.Command {
	return &cli.Command{
		Name:      "attach",
		Usage:     "attach this host to a project: with your account key, it gets a host id and credentials of its own",
		ArgsUsage: "URL",
		Description: "The account key comes from --account-key, --account-key-file or MOMONGA_ACCOUNT_KEY (a file or the\n" +
			"environment keep it out of the process list and the shell's history). The host's own key is made\n" +
			"in the data directory (host.nk, readable by you only) and never leaves it; `momonga run` then\n" +
			"connects with it. The project's app-signing key is pinned: apps not signed with it are refused.\n" +
			"An open project needs no account key: the running client just adds it. A client that runs\n" +
			"starts computing for the project at once; otherwise `momonga run` does.",
		Flags: []cli.Flag{
			dataFlag,
			jsonFlag,
			&cli.StringFlag{Name: "account-key", Usage: "your account key, from the project", EnvVars: []string{"MOMONGA_ACCOUNT_KEY"}},
			&cli.StringFlag{Name: "account-key-file", Usage: "file holding your account key"},
			&cli.StringFlag{Name: "name", Usage: "host name to show the project (default: this machine's)"},
			&cli.StringFlag{Name: "ca", Usage: "PEM file of the authority of the project's TLS certificate, if the system does not trust it"},
			&cli.Float64Flag{Name: "share", Usage: "resource share", Value: daemon.DefaultShare},
		},
		Action: func(c *cli.Context) error {
			u, err := oneArg(c, "URL")
			if err != nil {
				return errors.New("usage: momonga attach URL [--account-key KEY]")
			}
			key := c.String("account-key")
			if p := c.String("account-key-file"); p != "" {
				b, err := os.ReadFile(p)
				if err != nil {
					return fmt.Errorf("account key file: %w", err)
				}
				key = strings.TrimSpace(string(b))
			}
			ctx, stop := cliutil.SignalContext(c.Context)
			defer stop()
			var a daemon.Attachment
			if key != "" {
				if a, err = daemon.Attach(ctx, daemon.AttachConfig{DataDir: c.String("data"), URL: u, AccountKey: key, Name: c.String("name"), CAFile: c.String("ca")}); err != nil {
					return err
				}
			}
			// A running client takes the project on now; a stopped one
			// finds the attachment when it starts.
			running := true
			err = withClient(c, func(ctx context.Context, cl *control.Client) error { return cl.Attach(ctx, u, c.Float64("share")) })
			switch {
			case errors.Is(err, control.ErrNotRunning) && key != "":
				running = false
			case errors.Is(err, control.ErrNotRunning):
				return fmt.Errorf("%w: start it with `momonga run --project %s`, or attach with your account key (--account-key) if the project asks for one", err, u)
			case err != nil:
				return err
			}
			return output(c, map[string]any{"attached": u, "share": c.Float64("share"), "attachment": a, "running": running}, func(w io.Writer, _ any) {
				if key != "" {
					fmt.Fprintf(w, "attached to %s (%s) as host %s of user %s\nsigning key pinned: %s\n", a.Project, a.URL, a.Host, a.User, a.SigningKey)
				} else {
					fmt.Fprintf(w, "attached %s with share %g\n", u, c.Float64("share"))
				}
				if !running {
					fmt.Fprintf(w, "now run: momonga run --data %s\n", c.String("data"))
				}
			})
		},
	}
}
