// Command momonga-worker runs tasks for the volunteer client, as
// `momonga worker` does, with the fastest engine built into it: built with
// `-tags wasmtime` (and cgo), wasmtime, which runs CPU-bound modules about
// twice as fast as wazero; without the tag, wazero alone. It is shipped
// beside `momonga`, which starts it for each task when it is there and
// answers `momonga-worker engines`, so that the daemon itself stays pure Go
// and small (DESIGN.md §6). A module the faster engine cannot take runs on
// wazero in the same worker.
//
// The release build (`go run ./installers/build`, installers/release) builds
// it for the platforms whose C compiler it has and ships it beside momonga.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/cmd/internal/cliutil"
)

func main() {
	app := &cli.App{
		Name:  "momonga-worker",
		Usage: "run tasks for the momonga client (started by it)",
		Commands: []*cli.Command{
			cliutil.WorkerCommand,
			{
				Name:  "engines",
				Usage: "list the engines this worker runs modules on, the default first",
				Action: func(c *cli.Context) error {
					_, err := fmt.Fprintln(c.App.Writer, strings.Join(runner.Engines(), " "))
					return err
				},
			},
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "momonga-worker:", err)
		os.Exit(1)
	}
}
