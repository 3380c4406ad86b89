package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	wu "github.com/momonga-project/momonga/workunits"
)

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
				Name:      "set",
				Usage:     "change a user's settings: team, country, whether the statistics exports list the user",
				ArgsUsage: "NAME",
				Flags: append(toolFlags(),
					&cli.StringFlag{Name: "team", Usage: "team to join (\"\" leaves any)"},
					&cli.StringFlag{Name: "country", Usage: "country shown on the stats site and in the exports"},
					&cli.BoolFlag{Name: "stats-export", Usage: "list the user in the statistics exports (--stats-export=false leaves them out)"}),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("usage: momonga-project user set NAME [--team TEAM] [--country C] [--stats-export=true|false]")
					}
					set := wu.UserSet{User: c.Args().First()}
					if c.IsSet("team") {
						v := c.String("team")
						set.Team = &v
					}
					if c.IsSet("country") {
						v := c.String("country")
						set.Country = &v
					}
					if c.IsSet("stats-export") {
						v := c.Bool("stats-export")
						set.StatsExport = &v
					}
					ctx, adm, done, err := dial(c)
					if err != nil {
						return err
					}
					defer done()
					return adm.SetUser(ctx, set)
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
				Flags: append(toolFlags(), &cli.StringFlag{Name: "founder", Usage: "user who founds (and joins) the team"},
					&cli.IntFlag{Name: "type", Usage: "BOINC's team type, 1 (none) to 12"},
					&cli.StringFlag{Name: "country", Usage: "the team's country, as the stats site and exports show it"},
					&cli.StringFlag{Name: "url", Usage: "the team's web site (http or https)"},
					&cli.StringFlag{Name: "description", Usage: "a few words about the team"}),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("usage: momonga-project team add NAME [--founder USER] [--type N] [--country C] [--url URL] [--description TEXT]")
					}
					ctx, adm, done, err := dial(c)
					if err != nil {
						return err
					}
					defer done()
					id, err := adm.CreateTeam(ctx, wu.TeamAdd{Name: c.Args().First(), Founder: c.String("founder"), Type: c.Int("type"),
						Country: c.String("country"), URL: c.String("url"), Description: c.String("description")})
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
