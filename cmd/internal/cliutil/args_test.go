package cliutil

import (
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestInterspersed(t *testing.T) {
	app := &cli.App{
		Flags: []cli.Flag{&cli.BoolFlag{Name: "verbose"}},
		Commands: []*cli.Command{
			{Name: "results", Flags: []cli.Flag{&cli.StringFlag{Name: "out"}, &cli.BoolFlag{Name: "json"}}},
			{Name: "app", Subcommands: []*cli.Command{{Name: "add", Flags: []cli.Flag{&cli.StringFlag{Name: "server"}}}}},
		},
	}
	cases := []struct{ in, want []string }{
		{[]string{"p", "results", "B", "--out", "D"}, []string{"p", "results", "--out", "D", "--", "B"}},
		{[]string{"p", "--verbose", "results", "B", "--json", "--out=D"}, []string{"p", "--verbose", "results", "--json", "--out=D", "--", "B"}},
		{[]string{"p", "app", "add", "N", "F", "--server", "S"}, []string{"p", "app", "add", "--server", "S", "--", "N", "F"}},
		{[]string{"p", "results", "--", "--odd-name", "--out"}, []string{"p", "results", "--", "--odd-name", "--out"}},
		{[]string{"p", "results", "--out", "D"}, []string{"p", "results", "--out", "D"}},
		{[]string{"p", "unknown", "x", "--y"}, []string{"p", "--y", "--", "unknown", "x"}},
		{[]string{"p"}, []string{"p"}},
	}
	for _, c := range cases {
		if got := Interspersed(app, c.in); !slices.Equal(got, c.want) {
			t.Errorf("%q → %q, want %q", c.in, got, c.want)
		}
	}
}
