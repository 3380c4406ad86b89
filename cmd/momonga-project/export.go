package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write the statistics exports now, as BOINC's db_dump does: user.gz, team.gz, host.gz and tables.xml",
		Description: "The running server writes them (users who left the exports and their hosts are not in them; no e-mail\n" +
			"address ever is) and this tool saves them into --out, each file renamed into place once whole.\n" +
			"`serve` also writes them every --export-every into --stats-dir and serves them under /stats/.",
		Flags: append(toolFlags(), &cli.StringFlag{Name: "out", Usage: "directory to write into (required)"}),
		Action: func(c *cli.Context) error {
			if c.String("out") == "" || c.NArg() != 0 {
				return errors.New("usage: momonga-project export --out DIR")
			}
			ctx, adm, done, err := dial(c)
			if err != nil {
				return err
			}
			defer done()
			files, err := adm.Export(ctx, c.String("out"))
			if err != nil {
				return err
			}
			for _, f := range files {
				fmt.Fprintf(c.App.Writer, "%s\t%d bytes\n", f.Name, f.Size)
			}
			return nil
		},
	}
}
