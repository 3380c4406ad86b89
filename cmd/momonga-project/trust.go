package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/nats-io/nats.go"
	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/project/auth"
	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/project/signing"
	wu "github.com/momonga-project/momonga/workunits"
)

// toolFlags are the flags of every command that talks to a running server.
func toolFlags() []cli.Flag {
	return []cli.Flag{
		serverFlag,
		&cli.StringFlag{Name: "creds", Usage: "the project's credentials (the server's DATA/" + server.AdminCredsFile + "; not needed with serve --open)", EnvVars: []string{"MOMONGA_CREDS"}},
		&cli.StringFlag{Name: "ca", Usage: "PEM file of the authority that signed the server's TLS certificate, if the system does not trust it", EnvVars: []string{"MOMONGA_CA"}},
	}
}

func toolOptions(c *cli.Context) []nats.Option {
	var opts []nats.Option
	if p := c.String("creds"); p != "" {
		opts = append(opts, nats.UserCredentials(p))
	}
	if p := c.String("ca"); p != "" {
		opts = append(opts, nats.RootCAs(p))
	}
	return opts
}

// serveTrust reads serve's security flags.
func serveTrust(c *cli.Context) (server.Trust, error) {
	t := server.Trust{Open: c.Bool("open"), TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key"),
		HostRate: c.Float64("host-rate"), HostBurst: c.Int("host-burst")}
	if (t.TLSCert == "") != (t.TLSKey == "") {
		return t, errors.New("give both --tls-cert and --tls-key, or neither")
	}
	p := c.String("signing-key")
	if p == "" {
		p = filepath.Join(c.String("data"), signing.PublicFile)
	}
	key, err := signing.LoadPublic(p)
	if err != nil {
		return t, fmt.Errorf("%w (momonga-project init --data %s)", err, c.String("data"))
	}
	t.SigningKey = key
	return t, nil
}

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create the project's app-signing key (ed25519) in a data directory",
		Description: "Writes DATA/" + signing.PrivateFile + " (mode 0600) and DATA/" + signing.PublicFile + ". The server needs only the public\n" +
			"key; the private one signs apps (`app sign`) and may be moved to an offline machine. Also writes DATA/" + auth.KeysFile + "\n" +
			"(mode 0600), the keys of the project's NATS accounts, which every server of a cluster needs a copy of.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "data directory", Required: true},
			&cli.BoolFlag{Name: "if-needed", Usage: "do nothing if the project has its signing key already (the service's first start)"},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("if-needed") {
				if _, err := os.Stat(filepath.Join(c.String("data"), signing.PublicFile)); err == nil {
					return nil
				}
			}
			pub, err := signing.Init(c.String("data"))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "signing key: %s\npublic key:  %s (%s)\n",
				filepath.Join(c.String("data"), signing.PrivateFile), wu.FormatPublicKey(pub), filepath.Join(c.String("data"), signing.PublicFile))
			// The NATS keys too, so that the servers of a cluster can be
			// given the same ones before any of them starts.
			if _, err := auth.LoadOrCreateKeys(c.String("data")); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "NATS keys:   %s (a cluster's servers all need a copy, with %s)\n",
				filepath.Join(c.String("data"), auth.KeysFile), signing.PublicFile)
			return nil
		},
	}
}

func appCommand() *cli.Command {
	return &cli.Command{
		Name:  "app",
		Usage: "manage applications",
		Subcommands: []*cli.Command{
			{
				Name:      "sign",
				Usage:     "sign a WebAssembly module with the project's key, offline: writes FILE.wasm.sig",
				ArgsUsage: "FILE.wasm",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "key", Usage: "the project's private signing key (" + signing.PrivateFile + ")", Required: true, EnvVars: []string{"MOMONGA_SIGNING_KEY"}},
					&cli.StringFlag{Name: "out", Usage: "where to write the signature (default FILE.wasm.sig)"},
				},
				Action: appSign,
			},
			{
				Name:      "add",
				Usage:     "publish a signed WebAssembly module as an app, with its validation policy",
				ArgsUsage: "NAME FILE.wasm",
				Flags: append(toolFlags(),
					&cli.StringFlag{Name: "sig", Usage: "signature written by `app sign` (default FILE.wasm.sig)"},
					&cli.StringFlag{Name: "key", Usage: "sign with this private key now instead of reading --sig", EnvVars: []string{"MOMONGA_SIGNING_KEY"}},
					&cli.IntFlag{Name: "replication", Value: 2, Usage: "replicas of each work unit"},
					&cli.IntFlag{Name: "quorum", Value: 2, Usage: "agreeing results that make a work unit valid"},
					&cli.IntFlag{Name: "max-tasks", Usage: "replicas issued at most before a unit is in error (default 2·replication+2)"},
					&cli.BoolFlag{Name: "adaptive", Usage: "adaptive replication: hosts with a record of valid results get single, spot-checked replicas"},
					&cli.Float64Flag{Name: "tolerance-abs", Usage: "compare outputs token by token, numbers equal within this absolute difference"},
					&cli.Float64Flag{Name: "tolerance-rel", Usage: "compare outputs token by token, numbers equal within this relative difference"},
					&cli.Float64Flag{Name: "fpops", Usage: "estimated floating-point operations of one work unit (caps credit)"},
				),
				Action: appAdd,
			},
		},
	}
}

func appSign(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("usage: momonga-project app sign --key KEY FILE.wasm")
	}
	path := c.Args().First()
	module, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	// The signature covers the module as `app add` publishes it.
	if module, err = wu.PrepareModule(module); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	manifest, err := signing.Sign(c.String("key"), module)
	if err != nil {
		return err
	}
	out := c.String("out")
	if out == "" {
		out = path + ".sig"
	}
	if err := os.WriteFile(out, manifest, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "signed %s (sha256 %s): %s\n", path, wu.HashOf(module), out)
	return nil
}

func appAdd(c *cli.Context) error {
	if c.NArg() != 2 {
		return errors.New("usage: momonga-project app add NAME FILE.wasm [--sig FILE.wasm.sig | --key KEY]")
	}
	path := c.Args().Get(1)
	module, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	// Prepared first: the signature covers the module as it is published.
	if module, err = wu.PrepareModule(module); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var manifest []byte
	if k := c.String("key"); k != "" && !c.IsSet("sig") {
		if manifest, err = signing.Sign(k, module); err != nil {
			return err
		}
	} else {
		sig := c.String("sig")
		if sig == "" {
			sig = path + ".sig"
		}
		if manifest, err = os.ReadFile(sig); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s is not signed (no %s): sign it with `momonga-project app sign --key KEY %s`, or pass --key", path, sig, path)
		} else if err != nil {
			return err
		}
	}
	policy := wu.Policy{
		Replication: c.Int("replication"), Quorum: c.Int("quorum"), MaxTasks: c.Int("max-tasks"), Adaptive: c.Bool("adaptive"),
		Tolerance: wu.Tolerance{Abs: c.Float64("tolerance-abs"), Rel: c.Float64("tolerance-rel")}, FPOps: c.Float64("fpops"),
	}
	if err := policy.Validate(); err != nil {
		return err
	}
	ctx, adm, done, err := dial(c)
	if err != nil {
		return err
	}
	defer done()
	app, err := adm.AddApp(ctx, c.Args().Get(0), module, manifest, policy)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "app %s: %s (%d bytes), signed, replication %d, quorum %d\n", app.Name, app.Hash, app.Size, policy.Replication, policy.Quorum)
	return nil
}

func userCommand() *cli.Command {
	return &cli.Command{
		Name:  "user",
		Usage: "manage the users volunteers attach their hosts to",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "create a user and print its account key (shown this once: the project keeps only its hash)",
				ArgsUsage: "NAME",
				Flags: append(toolFlags(),
					&cli.StringFlag{Name: "email", Usage: "e-mail address (never shown on the stats page)"},
					&cli.StringFlag{Name: "team", Usage: "team to join"},
				),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("usage: momonga-project user add NAME [--email ADDRESS] [--team TEAM]")
					}
					ctx, adm, done, err := dial(c)
					if err != nil {
						return err
					}
					defer done()
					id, key, err := adm.AddUser(ctx, c.Args().First(), c.String("email"), c.String("team"))
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "user %s (%s)\naccount key: %s\nattach a host: momonga attach %s --account-key %s\n", c.Args().First(), id, key, c.String("server"), key)
					return nil
				},
			},
			{
				Name:   "list",
				Usage:  "list users, their teams, hosts and credit",
				Flags:  toolFlags(),
				Action: listAccounts(false),
			},
		},
	}
}

func teamCommand() *cli.Command {
	return &cli.Command{
		Name:  "team",
		Usage: "manage teams",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "create a team",
				ArgsUsage: "NAME",
				Flags:     append(toolFlags(), &cli.StringFlag{Name: "founder", Usage: "user who founds (and joins) the team"}),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("usage: momonga-project team add NAME [--founder USER]")
					}
					ctx, adm, done, err := dial(c)
					if err != nil {
						return err
					}
					defer done()
					id, err := adm.AddTeam(ctx, c.Args().First(), c.String("founder"))
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "team %s (%s)\n", c.Args().First(), id)
					return nil
				},
			},
			{
				Name:      "join",
				Usage:     "move a user into a team (--team \"\" leaves any)",
				ArgsUsage: "TEAM",
				Flags:     append(toolFlags(), &cli.StringFlag{Name: "user", Usage: "the user", Required: true}),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("usage: momonga-project team join TEAM --user USER")
					}
					ctx, adm, done, err := dial(c)
					if err != nil {
						return err
					}
					defer done()
					return adm.JoinTeam(ctx, c.String("user"), c.Args().First())
				},
			},
			{
				Name:   "list",
				Usage:  "list teams and their credit",
				Flags:  toolFlags(),
				Action: listAccounts(true),
			},
		},
	}
}

func hostCommand() *cli.Command {
	return &cli.Command{
		Name:  "host",
		Usage: "manage attached hosts",
		Subcommands: []*cli.Command{{
			Name:      "revoke",
			Usage:     "withdraw a host's credentials: its connections close and it may not connect again",
			ArgsUsage: "HOST",
			Flags:     toolFlags(),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return errors.New("usage: momonga-project host revoke HOST")
				}
				ctx, adm, done, err := dial(c)
				if err != nil {
					return err
				}
				defer done()
				if err := adm.RevokeHost(ctx, c.Args().First()); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "host %s revoked\n", c.Args().First())
				return nil
			},
		}},
	}
}

// printCredit writes tables of users and teams with their credit.
func printCredit(w io.Writer, users []wu.UserStatus, teams []wu.TeamStatus) {
	if users != nil {
		fmt.Fprintln(w, "\nUSER\tID\tEMAIL\tTEAM\tHOSTS\tCREDIT\tRAC")
		for _, u := range users {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%.2f\t%.2f\n", u.Name, u.ID, u.Email, u.Team, u.Hosts, u.Credit, u.RAC)
		}
	}
	if teams != nil {
		fmt.Fprintln(w, "\nTEAM\tID\tFOUNDER\tMEMBERS\tCREDIT\tRAC")
		for _, t := range teams {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%.2f\t%.2f\n", t.Name, t.ID, t.Founder, t.Members, t.Credit, t.RAC)
		}
	}
}

// listAccounts prints the users, or the teams, with their credit.
func listAccounts(teams bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		ctx, adm, done, err := dial(c)
		if err != nil {
			return err
		}
		defer done()
		acc, err := adm.Accounts(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		if teams {
			printCredit(w, nil, acc.Teams)
		} else {
			printCredit(w, acc.Users, nil)
		}
		return w.Flush()
	}
}
