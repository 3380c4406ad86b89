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
			data, share := c.String("data"), c.Float64("share")
			if key == "" {
				// An open project: the running client just adds it.
				err := withClient(c, func(ctx context.Context, cl *control.Client) error { return cl.Attach(ctx, u, share) })
				if errors.Is(err, control.ErrNotRunning) {
					return fmt.Errorf("%w: start it with `momonga run --project %s`, or attach with your account key (--account-key) if the project asks for one", err, u)
				}
				if err != nil {
					return err
				}
				return output(c, map[string]any{"attached": u, "share": share, "running": true}, func(w io.Writer, _ any) {
					fmt.Fprintf(w, "attached %s with share %g\n", u, share)
				})
			}
			// A running client registers the host itself and takes the
			// project on at once: the data directory is its own (a system
			// service's, maybe), not this command's to write.
			req := control.AttachRequest{URL: u, Share: share, AccountKey: key, Name: c.String("name")}
			if p := c.String("ca"); p != "" {
				pem, err := os.ReadFile(p)
				if err != nil {
					return fmt.Errorf("CA file: %w", err)
				}
				req.CA = string(pem)
			}
			var a control.Attached
			err = withClient(c, func(ctx context.Context, cl *control.Client) (err error) {
				a, err = cl.AttachWithKey(ctx, req)
				return err
			})
			running := err == nil
			if errors.Is(err, control.ErrNotRunning) {
				var att daemon.Attachment
				if att, err = daemon.Attach(ctx, daemon.AttachConfig{DataDir: data, URL: u, AccountKey: key, Name: req.Name, CAFile: c.String("ca")}); err != nil {
					return err
				}
				a = control.Attached{URL: att.URL, Project: att.Project, Host: att.Host, User: att.User, SigningKey: att.SigningKey}
			}
			if err != nil {
				return err
			}
			return output(c, map[string]any{"attached": u, "share": share, "attachment": a, "running": running}, func(w io.Writer, _ any) {
				fmt.Fprintf(w, "attached to %s (%s) as host %s of user %s\nsigning key pinned: %s\n", a.Project, a.URL, a.Host, a.User, a.SigningKey)
				switch {
				case !running:
					fmt.Fprintf(w, "now run: momonga run --data %s\n", data)
				case a.Reconnect:
					fmt.Fprintln(w, "the client was attached to this project already: it connects with the new credentials when it starts again")
				}
			})
		},
	}
}
