package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/project/hostbench"
)

func benchHostsCommand() *cli.Command {
	return &cli.Command{
		Name:  "hosts",
		Usage: "memory, connect rate and reconnection storm of a secured server holding many attached hosts",
		Description: "For each level and each server binary, starts a secured project server on this machine,\n" +
			"attaches --hosts hosts to one user as `momonga attach` does, and connects each with its own\n" +
			"key through the auth callout, as the client connects, saying hello. It prints the server's\n" +
			"resident memory with no host, with every host attached and with every host connected, per\n" +
			"host; the rate hosts connect at; and the storm: the server restarts and every host reconnects\n" +
			"at once, the time until every host is answered again, and the longest a request of the\n" +
			"project's tools waited meanwhile. --server LABEL=PATH measures another momonga-project\n" +
			"binary beside this one (a build of an earlier design, say).",
		Flags: []cli.Flag{
			&cli.IntSliceFlag{Name: "hosts", Value: cli.NewIntSlice(1000, 10000), Usage: "levels: hosts attached and connected"},
			&cli.StringSliceFlag{Name: "server", Usage: "LABEL=PATH of a momonga-project binary to measure after this one (repeatable)"},
			&cli.StringFlag{Name: "label", Value: "this build", Usage: "the label of this binary's rows"},
			&cli.IntFlag{Name: "concurrency", Value: 64, Usage: "hosts attaching and connecting at once"},
			&cli.StringFlag{Name: "dir", Usage: "keep the projects' data and the servers' logs here (default: a temporary directory, removed)"},
			&cli.StringFlag{Name: "profile", Usage: "write the servers' heap profiles and goroutines here, with every host connected and during the storm (go tool pprof)"},
			&cli.IntFlag{Name: "leaves", Usage: "connect the hosts to this many leaf-node servers (serve --leaf-of) of the core, in turn, and measure the leaves' memory (no storm)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: benchHosts,
	}
}

func benchHosts(c *cli.Context) error {
	ctx, stop := cliutil.SignalContext(context.Background())
	defer stop()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	servers := []hostbench.Server{{Label: c.String("label"), Path: self}}
	for _, s := range c.StringSlice("server") {
		label, path, ok := strings.Cut(s, "=")
		if !ok || label == "" || path == "" {
			return fmt.Errorf("--server %q: give LABEL=PATH of a momonga-project binary", s)
		}
		servers = append(servers, hostbench.Server{Label: label, Path: path})
	}
	// Each host holds a connection here and one in the server: raise the
	// open-file limit as far as this process may, for both.
	raiseFileLimit()
	rows, err := hostbench.Run(ctx, hostbench.Config{
		Servers:     servers,
		Hosts:       c.IntSlice("hosts"),
		Concurrency: c.Int("concurrency"),
		Dir:         c.String("dir"),
		ProfileDir:  c.String("profile"),
		Leaves:      c.Int("leaves"),
		Log:         func(s string) { fmt.Fprintln(c.App.ErrWriter, s) },
		Progress: func(r hostbench.Row) {
			if r.Failed != "" {
				fmt.Fprintf(c.App.ErrWriter, "%s, %d hosts: failed: %s\n", r.Server, r.Hosts, r.Failed)
				return
			}
			if r.Leaves > 0 {
				fmt.Fprintf(c.App.ErrWriter, "%s, %d hosts on %d leaf nodes: %.0f MB on the leaves\n", r.Server, r.Hosts, r.Leaves, r.LeafConnectedMB)
				return
			}
			fmt.Fprintf(c.App.ErrWriter, "%s, %d hosts: %.0f MB connected, storm %.1f s\n", r.Server, r.Hosts, r.ConnectedMB, r.Storm.Seconds())
		},
	})
	if err != nil {
		return err
	}
	return cliutil.Output(c, rows, printHosts)
}

func printHosts(out io.Writer, rows []hostbench.Row) error {
	s := func(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	var core, leaf []hostbench.Row
	for _, r := range rows {
		if r.Leaves > 0 && r.Failed == "" {
			leaf = append(leaf, r)
		} else {
			core = append(core, r)
		}
	}
	if len(core) > 0 {
		fmt.Fprintln(w, "secured server's resident memory (MB) with no host, every host attached, every host connected;")
		fmt.Fprintln(w, "KB per host attached and per host connected; the storm after a restart: until half and all hosts are")
		fmt.Fprintln(w, "answered again, the tools' longest wait meanwhile")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "server\thosts\tbase MB\tattached MB\tconnected MB\tKB/attached\tKB/connected\tconnects/s\tstorm p50\tstorm\ttools' worst\tafter storm MB")
	}
	for _, r := range core {
		if r.Failed != "" {
			fmt.Fprintf(w, "%s\t%d\t%.0f\t%.0f\t%.0f (when it gave way)\t%.1f\tfailed: %s\n", r.Server, r.Hosts, r.BaseMB, r.AttachedMB, r.ConnectedMB, r.AttachedKB, strings.ReplaceAll(r.Failed, "\n", " | "))
			continue
		}
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%.0f\t%.0f\t%.1f\t%.1f\t%.0f\t%s\t%s\t%s\t%.0f\n", r.Server, r.Hosts,
			r.BaseMB, r.AttachedMB, r.ConnectedMB, r.AttachedKB, r.ConnectedKB, r.ConnectPerSecond,
			s(r.StormP50), s(r.Storm), s(r.OthersWorst), r.AfterStormMB)
	}
	if len(leaf) > 0 {
		if len(core) > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, "hosts connected to leaf-node servers: the core's resident memory (MB) and the leaves' (all together),")
		fmt.Fprintln(w, "KB per host on its leaf")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "server\thosts\tleaves\tcore base MB\tcore attached MB\tcore connected MB\tleaves base MB\tleaves connected MB\tKB/connected on a leaf\tconnects/s")
		for _, r := range leaf {
			fmt.Fprintf(w, "%s\t%d\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.0f\n", r.Server, r.Hosts, r.Leaves,
				r.BaseMB, r.AttachedMB, r.ConnectedMB, r.LeafBaseMB, r.LeafConnectedMB, r.LeafKB, r.ConnectPerSecond)
		}
	}
	return w.Flush()
}
