// Package cliutil holds what both binaries' command lines share: the
// version, logging flags, signal handling and the hidden worker command.
package cliutil

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/runner"
)

// Version is set at build time with -ldflags "-X ...cliutil.Version=v1.2.3".
var Version = "0.1.0-dev"

// LogFlags are the logging options of every command.
var LogFlags = []cli.Flag{
	&cli.BoolFlag{Name: "verbose", Usage: "log what is going on (to stderr)"},
	&cli.BoolFlag{Name: "debug", Usage: "log in detail"},
}

// Logger builds the logger the flags ask for: quiet by default.
func Logger(c *cli.Context) *slog.Logger {
	level := slog.LevelWarn
	if c.Bool("verbose") {
		level = slog.LevelInfo
	}
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// SignalContext is ctx, cancelled on SIGINT or SIGTERM.
func SignalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// WorkerCommand is the hidden subcommand a daemon re-executes its own binary
// with to run one task in a separate process, or (--benchmark) to run the
// benchmarks away from the daemon's memory.
var WorkerCommand = &cli.Command{
	Name:   "worker",
	Hidden: true,
	Usage:  "run one task (started by the daemon, reads its spec on stdin)",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "benchmark", Usage: "run the benchmarks and write them as JSON"},
		&cli.StringFlag{Name: "data", Usage: "the client's data directory (for --benchmark)"},
	},
	Action: func(c *cli.Context) error {
		if c.Bool("benchmark") {
			data := c.String("data")
			cache := ""
			if data != "" {
				cache = filepath.Join(data, "cache")
			}
			os.Exit(host.BenchmarkMain(c.Context, os.Stdout, data, cache))
		}
		os.Exit(runner.WorkerMain(os.Stdin, os.Stdout))
		return nil
	},
}

// PrintJSON writes v to w as indented JSON: what a command's --json prints.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Output prints what a command found to its writer: as JSON with --json,
// else as table writes it for a person.
func Output[T any](c *cli.Context, v T, table func(io.Writer, T) error) error {
	if c.Bool("json") {
		return PrintJSON(c.App.Writer, v)
	}
	return table(c.App.Writer, v)
}
