package main

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	clientbench "github.com/momonga-project/momonga/client/bench"
	"github.com/momonga-project/momonga/cmd/internal/cliutil"
)

func benchCheckpointCommand() *cli.Command {
	return &cli.Command{
		Name:  "checkpoint",
		Usage: "checkpoint size and speed for several memory sizes, and the sample apps under wazero against native builds",
		Description: "For each memory size, a reactor module with that much linear memory (filled like a numeric app's:\n" +
			"a float64 field, small integers, repeated records, zeros) is checkpointed in full, then as a delta\n" +
			"after one step that touches one page, then restored into a fresh instance. Then each sample app runs\n" +
			"under wazero's compiler in this process and natively (built with the go command from the repository\n" +
			"in the working directory); the ratio is wazero's CPU time over the native build's.",
		Flags: []cli.Flag{
			&cli.IntSliceFlag{Name: "memory", Value: cli.NewIntSlice(8, 64, 256), Usage: "memory sizes in MiB (powers of two)"},
			&cli.StringSliceFlag{Name: "apps", Value: cli.NewStringSlice("primes", "mandel", "mandelr", "mandelc"), Usage: "sample apps to time (none: --apps '')"},
			&cli.IntFlag{Name: "runs", Value: 3, Usage: "checkpoint each memory size this many times and keep the fastest times"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: benchCheckpoint,
	}
}

func benchCheckpoint(c *cli.Context) error {
	ctx, stop := cliutil.SignalContext(c.Context)
	defer stop()
	rows, err := clientbench.Checkpoints(ctx, c.IntSlice("memory"), c.Int("runs"))
	if err != nil {
		return err
	}
	var list []clientbench.SampleApp
	for _, name := range c.StringSlice("apps") {
		found := false
		for _, a := range clientbench.SampleApps {
			if a.Name == name {
				list, found = append(list, a), true
			}
		}
		if !found && name != "" {
			return fmt.Errorf("no sample app %q", name)
		}
	}
	root := ""
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil && strings.HasSuffix(strings.TrimSpace(string(out)), "go.mod") {
		root = filepath.Dir(strings.TrimSpace(string(out)))
	}
	if root == "" && len(list) > 0 {
		fmt.Fprintln(c.App.ErrWriter, "no go command or repository here: the apps run under wazero only")
	}
	appRows, err := clientbench.Apps(ctx, list, root)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return cliutil.PrintJSON(c.App.Writer, map[string]any{"checkpoints": rows, "apps": appRows})
	}
	return printCheckpointBench(c.App.Writer, rows, appRows)
}

func printCheckpointBench(out io.Writer, rows []clientbench.CheckpointRow, appRows []clientbench.AppRow) error {
	mib := func(n int) string { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "checkpoints of a reactor's memory (sizes in MiB; delta: after one more step touching one page; times: fastest of the runs)")
	fmt.Fprintln(w, "memory\tnon-zero\tfull (zstd)\tdelta\tdelta/full\twrite\twrite MB/s\tdelta write\trestore\trestore MB/s")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%.3f\t%.2f%%\t%s\t%.0f\t%s\t%s\t%.0f\n", mib(r.MemoryBytes), mib(r.NonzeroBytes), mib(r.FullBytes),
			float64(r.DeltaBytes)/(1<<20), 100*float64(r.DeltaBytes)/float64(r.FullBytes), ms(r.Write), r.WriteMBps, ms(r.WriteDelta),
			ms(r.Restore), r.RestoreMBps)
	}
	if len(appRows) > 0 {
		fmt.Fprintln(w, "\nsample apps: CPU time under wazero (compiler) and native (wall time in brackets)")
		fmt.Fprintln(w, "app\twazero\tnative\tratio\tnative build")
		for _, r := range appRows {
			native, ratio := "-", "-"
			if r.NativeCPU > 0 {
				native = fmt.Sprintf("%.2fs (%.2fs)", r.NativeCPU.Seconds(), r.NativeWall.Seconds())
				ratio = fmt.Sprintf("%.2f", r.Ratio)
			}
			note := r.Native
			if r.Note != "" {
				note = r.Note
			}
			fmt.Fprintf(w, "%s\t%.2fs (%.2fs)\t%s\t%s\t%s\n", r.App, r.WazeroCPU.Seconds(), r.WazeroWall.Seconds(), native, ratio, note)
		}
	}
	return w.Flush()
}
