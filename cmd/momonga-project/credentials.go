package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/project/signing"
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
	if len(c.StringSlice("leaf-of")) > 0 && !c.IsSet("signing-key") {
		// A leaf node publishes no app: it needs the project's NATS keys
		// only, as the README's table says.
		return t, nil
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
