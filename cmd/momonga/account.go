package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/client/daemon"
	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	wu "github.com/momonga-project/momonga/workunits"
)

var projectFlag = &cli.StringFlag{Name: "project", Usage: "the project (its URL), when the host is attached to several"}

// setAccount sends the user's settings through the attached project.
func setAccount(c *cli.Context, set wu.UserSet, done string) error {
	ctx, stop := cliutil.SignalContext(c.Context)
	defer stop()
	att, err := daemon.SetAccount(ctx, daemon.AccountConfig{DataDir: c.String("data"), URL: c.String("project"), Set: set})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s (user %s, project %s)\n", done, att.User, att.URL)
	return nil
}

func teamCommand() *cli.Command {
	return &cli.Command{
		Name:  "team",
		Usage: "choose the team you compute for, on the attached project",
		Subcommands: []*cli.Command{
			{
				Name:      "join",
				Usage:     "join a team (by its name, as the project's stats site shows it)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{dataFlag, projectFlag},
				Action: func(c *cli.Context) error {
					name, err := oneArg(c, "NAME")
					if err != nil {
						return errors.New("usage: momonga team join NAME")
					}
					return setAccount(c, wu.UserSet{Team: &name}, "joined team "+name)
				},
			},
			{
				Name:  "leave",
				Usage: "leave your team",
				Flags: []cli.Flag{dataFlag, projectFlag},
				Action: func(c *cli.Context) error {
					none := ""
					return setAccount(c, wu.UserSet{Team: &none}, "left the team")
				},
			},
		},
	}
}

func accountCommand() *cli.Command {
	return &cli.Command{
		Name:  "account",
		Usage: "your settings on the attached project",
		Subcommands: []*cli.Command{{
			Name:      "set",
			Usage:     "set country (shown on the stats site and in its exports) or stats_export (false: leave the statistics exports)",
			ArgsUsage: "KEY VALUE",
			Flags:     []cli.Flag{dataFlag, projectFlag},
			Action: func(c *cli.Context) error {
				if c.NArg() != 2 {
					return errors.New("usage: momonga account set country NAME | stats_export true|false")
				}
				key, value := c.Args().Get(0), c.Args().Get(1)
				switch key {
				case "country":
					return setAccount(c, wu.UserSet{Country: &value}, "country set to "+value)
				case "stats_export":
					on, err := strconv.ParseBool(value)
					if err != nil {
						return fmt.Errorf("stats_export %q: true or false", value)
					}
					return setAccount(c, wu.UserSet{StatsExport: &on}, "statistics exports: "+strconv.FormatBool(on))
				}
				return fmt.Errorf("unknown setting %q: country or stats_export", key)
			},
		}},
	}
}
