package cliutil

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// Interspersed reorders a command line so that every flag of the command it
// names comes before the command's arguments. urfave/cli stops reading flags
// at the first argument; with this, `results BATCH --out DIR` means what it
// says, as documented. Anything after "--" stays an argument.
func Interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	cmds := app.Commands
	flags := app.Flags
	// Walk down the command names, keeping the flags met on the way.
	for len(rest) > 0 {
		a := rest[0]
		if strings.HasPrefix(a, "-") {
			n := flagWidth(flags, rest)
			out = append(out, rest[:n]...)
			rest = rest[n:]
			continue
		}
		cmd := findCommand(cmds, a)
		if cmd == nil {
			break
		}
		out = append(out, a)
		rest = rest[1:]
		cmds, flags = cmd.Subcommands, cmd.Flags
		if len(cmds) == 0 {
			break
		}
	}
	var positional []string
	for len(rest) > 0 {
		a := rest[0]
		if a == "--" {
			positional = append(positional, rest...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			n := flagWidth(flags, rest)
			out = append(out, rest[:n]...)
			rest = rest[n:]
			continue
		}
		positional = append(positional, a)
		rest = rest[1:]
	}
	if len(positional) > 0 && positional[0] != "--" {
		out = append(out, "--")
	}
	return append(out, positional...)
}

// flagWidth is how many words the flag at args[0] takes: one for a boolean,
// a --name=value or an unknown flag, two for a flag that takes a value.
func flagWidth(flags []cli.Flag, args []string) int {
	name := strings.TrimLeft(args[0], "-")
	if strings.Contains(name, "=") {
		return 1
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if df, ok := f.(cli.DocGenerationFlag); ok && !df.TakesValue() {
				return 1
			}
			if len(args) < 2 {
				return 1
			}
			return 2
		}
	}
	return 1
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
