package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/client/daemon"
	"github.com/momonga-project/momonga/cmd/internal/cliutil"
)

func attachCommand() *cli.Command {
	return &cli.Command{
		Name:      "attach",
		Usage:     "attach this host to a project with your account key: it gets a host id and credentials of its own",
		ArgsUsage: "URL",
		Description: "The account key comes from --account-key, --account-key-file or MOMONGA_ACCOUNT_KEY (a file or the\n" +
			"environment keep it out of the process list and the shell's history). The host's own key is made\n" +
			"in the data directory (host.nk, readable by you only) and never leaves it; `momonga run` then\n" +
			"connects with it. The project's app-signing key is pinned: apps not signed with it are refused.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "data directory (host identity, credentials, cache)", Value: defaultDataDir()},
			&cli.StringFlag{Name: "account-key", Usage: "your account key, from the project", EnvVars: []string{"MOMONGA_ACCOUNT_KEY"}},
			&cli.StringFlag{Name: "account-key-file", Usage: "file holding your account key"},
			&cli.StringFlag{Name: "name", Usage: "host name to show the project (default: this machine's)"},
			&cli.StringFlag{Name: "ca", Usage: "PEM file of the authority of the project's TLS certificate, if the system does not trust it"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("usage: momonga attach URL --account-key KEY")
			}
			key := c.String("account-key")
			if p := c.String("account-key-file"); p != "" {
				b, err := os.ReadFile(p)
				if err != nil {
					return fmt.Errorf("account key file: %w", err)
				}
				key = strings.TrimSpace(string(b))
			}
			if key == "" {
				return errors.New("give your account key with --account-key, --account-key-file or MOMONGA_ACCOUNT_KEY")
			}
			ctx, stop := cliutil.SignalContext(c.Context)
			defer stop()
			a, err := daemon.Attach(ctx, daemon.AttachConfig{DataDir: c.String("data"), URL: c.Args().First(), AccountKey: key, Name: c.String("name"), CAFile: c.String("ca")})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "attached to %s (%s) as host %s of user %s\nsigning key pinned: %s\nnow run: momonga run --data %s\n",
				a.Project, a.URL, a.Host, a.User, a.SigningKey, c.String("data"))
			return nil
		},
	}
}
