package main

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/project/auth"
	"github.com/momonga-project/momonga/project/boinc"
	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/project/signing"
	wu "github.com/momonga-project/momonga/workunits"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create the project's app-signing key (ed25519) and BOINC code-signing key (RSA) in a data directory",
		Description: "Writes DATA/" + signing.PrivateFile + " (mode 0600) and DATA/" + signing.PublicFile + ". The server needs only the public\n" +
			"key; the private one signs apps (`app sign`) and may be moved to an offline machine. Also writes DATA/" + auth.KeysFile + "\n" +
			"(mode 0600), the keys of the project's NATS accounts, which every server of a cluster needs a copy of; and the BOINC\n" +
			"code-signing key pair, DATA/" + boinc.CodeSignPrivateFile + " (mode 0600: `app add` signs the apps' files for BOINC clients with it; it\n" +
			"may be moved offline) and DATA/" + boinc.CodeSignPublicFile + " (what the servers need).",
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
			fmt.Fprintf(c.App.Writer, "BOINC keys:  %s (mode 0600, signs the BOINC app's files at `app add`; may be kept offline) and %s; %s (the same on every server serving BOINC clients)\n",
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
					&cli.StringFlag{Name: "code-sign-key", Usage: "the project's BOINC code-signing private key (" + boinc.CodeSignPrivateFile + "): signs the app's files for stock BOINC clients (default DATA/" + boinc.CodeSignPrivateFile + " with --data)", EnvVars: []string{"MOMONGA_CODE_SIGN_KEY"}},
					&cli.StringFlag{Name: "data", Usage: "the project's data directory, when it is on this machine: its " + boinc.CodeSignPrivateFile + " and boinc-apps are used"},
					&cli.StringFlag{Name: "boinc-apps", Usage: "the BOINC apps the server serves, momonga-boinc-app_PLATFORM, to sign with the module (default DATA/boinc-apps, or, when that does not exist, " + server.PackagedBOINCApps + ")"},
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
	codeSigs, boincNote, err := signForBOINC(c, module)
	if err != nil {
		return err
	}
	ctx, adm, done, err := dial(c)
	if err != nil {
		return err
	}
	defer done()
	app, err := adm.AddApp(ctx, c.Args().Get(0), module, manifest, policy, codeSigs...)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "app %s: %s (%d bytes), signed, replication %d, quorum %d\n", app.Name, app.Hash, app.Size, policy.Replication, policy.Quorum)
	fmt.Fprintf(c.App.Writer, "BOINC: %s\n", boincNote)
	return nil
}

// signForBOINC signs the files of the app's BOINC app versions (its module
// and the BOINC app of each platform) with the project's code-signing key,
// as BOINC signs an app version's files when it is added: servers send
// these signatures and sign nothing themselves. Without the key at hand the
// app goes without them, and the note says what that means.
func signForBOINC(c *cli.Context, module []byte) ([]wu.CodeSignature, string, error) {
	keyPath, data := c.String("code-sign-key"), c.String("data")
	if keyPath == "" && data != "" {
		keyPath = filepath.Join(data, boinc.CodeSignPrivateFile)
	}
	if keyPath == "" {
		return nil, "not signed for stock BOINC clients (no --code-sign-key or --data): a server with --boinc-http sends them none of its work", nil
	}
	key, err := boinc.ReadCodeSigningKey(keyPath)
	if err != nil {
		return nil, "", err
	}
	dir := c.String("boinc-apps")
	runners, err := boinc.LoadRunners(cmp.Or(dir, server.BOINCAppsDir(data, "")))
	if err != nil && (dir != "" || !errors.Is(err, boinc.ErrNoRunners)) {
		return nil, "", err
	}
	sigs, err := boinc.SignApp(key, module, runners)
	if err != nil {
		return nil, "", err
	}
	if len(runners) == 0 {
		return sigs, fmt.Sprintf("signed the module only (%v): BOINC clients get its work once the BOINC apps the server serves are signed too: add the app again with --boinc-apps DIR", err), nil
	}
	return sigs, fmt.Sprintf("signed the module and the BOINC apps for %s", strings.Join(slices.Sorted(maps.Keys(runners)), ", ")), nil
}
