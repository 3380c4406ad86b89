package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/project/auth"
	"github.com/momonga-project/momonga/project/boinc"
	"github.com/momonga-project/momonga/project/signing"
	wu "github.com/momonga-project/momonga/workunits"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create the project's app-signing key (ed25519) and BOINC code-signing key (RSA) in a data directory",
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
			if err := boinc.InitCodeSigning(c.String("data")); err != nil {
				return err
			}
			if _, err := boinc.LoadOrCreateSecret(c.String("data")); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "BOINC keys:  %s (mode 0600, signs the BOINC app's files) and %s; %s (the same on every server serving BOINC clients)\n",
				filepath.Join(c.String("data"), boinc.CodeSignPrivateFile), boinc.CodeSignPublicFile, boinc.SecretFile)
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
