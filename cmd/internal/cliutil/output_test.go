package cliutil

import (
	"bytes"
	"io"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestOutputPrintsJSONOrTheTable(t *testing.T) {
	type row struct {
		N int `json:"n"`
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"x"}, "table 7\n"},
		{[]string{"x", "--json"}, "{\n  \"n\": 7\n}\n"},
	} {
		var out bytes.Buffer
		app := &cli.App{
			Writer: &out,
			Flags:  []cli.Flag{&cli.BoolFlag{Name: "json"}},
			Action: func(ctx *cli.Context) error {
				return Output(ctx, row{N: 7}, func(w io.Writer, r row) error {
					_, err := io.WriteString(w, "table "+string(rune('0'+r.N))+"\n")
					return err
				})
			},
		}
		if err := app.Run(c.args); err != nil {
			t.Fatal(err)
		}
		if out.String() != c.want {
			t.Errorf("%v: printed %q, want %q", c.args, out.String(), c.want)
		}
	}
}
