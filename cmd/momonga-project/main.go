// Command momonga-project runs a momonga project: the server volunteers
// connect to, and the tools scientists publish apps and batches with.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/cmd/internal/demo"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/auth"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/project/signing"
	"github.com/momonga-project/momonga/project/submitspec"
	wu "github.com/momonga-project/momonga/workunits"
)

func main() {
	a := app()
	if err := a.Run(cliutil.Interspersed(a, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "momonga-project:", err)
		os.Exit(1)
	}
}

var serverFlag = &cli.StringFlag{Name: "server", Usage: "NATS URL of the project server", Value: "nats://127.0.0.1:4222", EnvVars: []string{"MOMONGA_SERVER"}}

func app() *cli.App {
	return &cli.App{
		Name:    "momonga-project",
		Usage:   "run a momonga volunteer-computing project",
		Version: cliutil.Version,
		Flags:   cliutil.LogFlags,
		Commands: []*cli.Command{
			initCommand(),
			serveCommand(),
			appCommand(),
			userCommand(),
			teamCommand(),
			hostCommand(),
			submitCommand(),
			cancelCommand(),
			exportCommand(),
			{
				Name:   "status",
				Usage:  "show batches, work units by state and hosts",
				Flags:  append(toolFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
				Action: status,
			},
			{
				Name:      "results",
				Usage:     "download a batch's canonical results, one file per work unit, plus manifest.json",
				ArgsUsage: "BATCH",
				Flags: append(toolFlags(),
					&cli.StringFlag{Name: "out", Usage: "directory to write into (required)"},
					&cli.StringFlag{Name: "manifest", Value: "manifest.json", Usage: "file name of the manifest in --out"}),
				Action: results,
			},
			{
				Name:  "demo",
				Usage: "run a project and volunteers on this machine and count the primes below 10^8 (or, with --scenario migrate, move a task from a volunteer that dies to another)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "scenario", Value: "primes", Usage: "primes: π(10^8) on 3 volunteers; migrate: kill the volunteer computing a long task, see it resume elsewhere from its checkpoint"},
					&cli.DurationFlag{Name: "checkpoint", Value: 3 * time.Second, Usage: "migrate: checkpoint interval"},
					&cli.IntFlag{Name: "volunteers", Value: 3, Usage: "volunteer clients to start"},
					&cli.StringFlag{Name: "data", Usage: "data directory to keep (default: a temporary one)"},
					&cli.BoolFlag{Name: "exit-when-done", Usage: "exit once the batch is validated"},
					&cli.StringFlag{Name: "http", Usage: "stats page address", Value: "127.0.0.1:8080"},
					membersFlag,
				},
				Action: func(c *cli.Context) error {
					ctx, stop := cliutil.SignalContext(context.Background())
					defer stop()
					switch c.String("scenario") {
					case "primes":
					case "migrate":
						return demo.RunMigrate(ctx, demo.MigrateConfig{DataDir: c.String("data"), Interval: c.Duration("checkpoint"), Logger: cliutil.Logger(c)})
					default:
						return fmt.Errorf("unknown scenario %q: use primes or migrate", c.String("scenario"))
					}
					return demo.Run(ctx, demo.Config{
						Members:      c.Int("members"),
						Volunteers:   c.Int("volunteers"),
						DataDir:      c.String("data"),
						ExitWhenDone: c.Bool("exit-when-done"),
						HTTPListen:   c.String("http"),
						Logger:       cliutil.Logger(c),
					})
				},
			},
			withVpeerBench(benchCommand()),
			vpeerCommand(),
			demoVolunteerCommand(),
			cliutil.WorkerCommand,
		},
	}
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the project server (embedded NATS with JetStream, scheduler, gateway, stats page)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "data directory (not with --join)"},
			&cli.StringFlag{Name: "nats-listen", Usage: "NATS address for volunteers and tools", Value: "127.0.0.1:4222"},
			&cli.StringFlag{Name: "http", Usage: "stats site address (empty: none)", Value: "127.0.0.1:8080"},
			&cli.StringFlag{Name: "stats-dir", Usage: "where the statistics exports are written and served from (default DATA/stats; with --join: none)"},
			&cli.DurationFlag{Name: "export-every", Value: 24 * time.Hour, Usage: "how often the statistics exports are written (0: only by `momonga-project export`)"},
			&cli.StringFlag{Name: "name", Usage: "project name", Value: "momonga"},
			&cli.DurationFlag{Name: "lease", Usage: "a task with no heartbeat for this long goes to another host", Value: sched.DefaultConfig().Lease},
			&cli.DurationFlag{Name: "beat", Usage: "how often hosts send heartbeats while computing", Value: sched.DefaultConfig().Beat},
			&cli.StringFlag{Name: "scheduling", Value: sched.PolicyCapability, Usage: "how tasks are chosen for a host: capability (by its measured speed and the units' sizes and deadlines) or fcfs (the oldest first)"},
			&cli.IntFlag{Name: "max-tasks-per-core", Value: sched.DefaultConfig().MaxTasksPerCore, Usage: "tasks a host may hold at once per core (-1: no bound)"},
			&cli.BoolFlag{Name: "open", Usage: "no NATS authentication: anyone who reaches the port may do anything (trials on one machine, tests)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate of the NATS listener (with --tls-key): volunteers connect over TLS"},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM private key of --tls-cert"},
			&cli.StringFlag{Name: "signing-key", Usage: "public key apps must be signed with (default: DATA/" + signing.PublicFile + ", made by `init`)"},
			&cli.Float64Flag{Name: "host-rate", Value: 20, Usage: "requests per second one host may send"},
			&cli.IntFlag{Name: "host-burst", Value: 200, Usage: "requests one host may send at once above its rate"},
			membersFlag,
			&cli.BoolFlag{Name: "join", Usage: "add up to --members members to the virtual peer of the project at --nats-url, instead of serving a project"},
			&cli.StringFlag{Name: "nats-url", Usage: "with --join: NATS URL of the project to join; without: serve the project on this external NATS server or cluster instead of an embedded one", Value: "nats://127.0.0.1:4222"},
			&cli.StringFlag{Name: "creds", Usage: "with --join or --nats-url: the project's credentials (its DATA/" + server.AdminCredsFile + ")", EnvVars: []string{"MOMONGA_CREDS"}},
			&cli.StringFlag{Name: "ca", Usage: "with --join or --nats-url: PEM file of the authority that signed the project's TLS certificate", EnvVars: []string{"MOMONGA_CA"}},
			&cli.StringFlag{Name: "cluster-name", Usage: "make the embedded NATS server one of this NATS cluster (with --cluster-listen and --routes)"},
			&cli.StringFlag{Name: "cluster-listen", Usage: "host:port this server takes the cluster's routes on"},
			&cli.StringSliceFlag{Name: "routes", Usage: "route addresses of the cluster's servers, nats://HOST:PORT (comma-separated or repeated); list this server's own as --cluster-listen gives it, so that it counts once"},
			&cli.IntFlag{Name: "replicas", Usage: "replicas of the log, snapshots, membership and blobs (default 1; in a cluster min(3, servers))"},
			&cli.IntFlag{Name: "group-size", Usage: "members the scheduler's virtual peer keeps, all servers together (default --members; in a cluster --members per server)"},
			&cli.StringFlag{Name: "boinc-http", Usage: "serve stock BOINC clients over HTTP on this address (off by default)"},
			&cli.StringFlag{Name: "boinc-url", Usage: "the master URL BOINC volunteers attach to (default http://BOINC-HTTP/)"},
			&cli.StringFlag{Name: "boinc-apps", Usage: "directory of the BOINC app built for each platform, momonga-boinc-app_PLATFORM (default DATA/boinc-apps, or, when that does not exist, /usr/lib/momonga-project/boinc-apps, where the momonga-project package installs them)"},
			&cli.BoolFlag{Name: "boinc-account-creation", Usage: "let BOINC's attach wizard create accounts with an e-mail address and password"},
			&cli.StringFlag{Name: "leaf-listen", Usage: "host:port this core server takes leaf-node servers' connections on (see --leaf-of)"},
			&cli.IntFlag{Name: "profile-port", Hidden: true, Usage: "serve Go's profiles of this process (/debug/pprof/) on this port of the --nats-listen host, for measurements (`bench hosts --profile`)"},
			&cli.StringSliceFlag{Name: "leaf-of", Usage: "run a leaf-node server at the edge instead: NATS and the auth callout for volunteers, connected to these core servers' --leaf-listen addresses, nats://HOST:PORT (DATA holds a copy of the core's " + auth.KeysFile + ")"},
		},
		Action: func(c *cli.Context) error {
			ctx, stop := cliutil.SignalContext(context.Background())
			defer stop()
			if c.Bool("join") {
				return join(ctx, c)
			}
			if c.String("data") == "" {
				return fmt.Errorf("name the data directory with --data")
			}
			if c.Duration("beat") >= c.Duration("lease") {
				return fmt.Errorf("--beat %s must be shorter than --lease %s", c.Duration("beat"), c.Duration("lease"))
			}
			trust, err := serveTrust(c)
			if err != nil {
				return err
			}
			if c.Int("members") < 1 {
				return fmt.Errorf("--members %d: a server runs at least one member of each virtual peer", c.Int("members"))
			}
			cluster := server.Cluster{
				Name:   c.String("cluster-name"),
				Listen: c.String("cluster-listen"),
				Routes: routes(c.StringSlice("routes")),
			}
			external := c.IsSet("nats-url")
			leafOf := routes(c.StringSlice("leaf-of"))
			var cfg server.Config
			switch {
			case len(leafOf) > 0 && (external || cluster.Name != ""):
				return errors.New("a leaf-node server (--leaf-of) is neither a cluster's server (--cluster-name) nor on an external NATS (--nats-url)")
			case len(leafOf) > 0:
				cfg = server.Leaf(c.String("data"), c.String("nats-listen"), leafOf...)
			case external && cluster.Name != "":
				return errors.New("a project on an external NATS (--nats-url) runs no NATS server of its own to cluster (--cluster-name)")
			case external:
				cfg = server.External(c.String("nats-url"), toolOptions(c)...)
			case cluster.Name != "":
				cfg = server.Clustered(c.String("data"), c.String("nats-listen"), cluster)
			case cluster.Listen != "" || len(cluster.Routes) > 0:
				return fmt.Errorf("--cluster-listen and --routes need --cluster-name")
			default:
				cfg = server.Embedded(c.String("data"), c.String("nats-listen"))
			}
			cfg.HTTPListen = c.String("http")
			cfg.StatsDir, cfg.ExportEvery = c.String("stats-dir"), c.Duration("export-every")
			if cfg.StatsDir == "" {
				cfg.StatsDir = filepath.Join(c.String("data"), "stats")
			}
			if len(leafOf) > 0 {
				cfg.HTTPListen, cfg.StatsDir = "", ""
			}
			cfg.LeafListen = c.String("leaf-listen")
			cfg.ProfilePort = c.Int("profile-port")
			if p := c.String("scheduling"); p != sched.PolicyCapability && p != sched.PolicyFCFS {
				return fmt.Errorf("--scheduling %q: use %s or %s", p, sched.PolicyCapability, sched.PolicyFCFS)
			}
			if c.Int("max-tasks-per-core") == 0 {
				return fmt.Errorf("--max-tasks-per-core 0 would give no host any task: use a bound of at least 1, or -1 for none")
			}
			cfg.Sched = sched.Config{Project: c.String("name"), Lease: c.Duration("lease"), Beat: c.Duration("beat"),
				Policy: c.String("scheduling"), MaxTasksPerCore: c.Int("max-tasks-per-core")}
			cfg.Members, cfg.GroupSize, cfg.Replicas = c.Int("members"), c.Int("group-size"), c.Int("replicas")
			cfg.Logger = cliutil.Logger(c)
			cfg.Trust = trust
			cfg.BOINC = server.BOINC{Listen: c.String("boinc-http"), URL: c.String("boinc-url"), Dir: c.String("data"),
				AppsDir: c.String("boinc-apps"), AllowAccountCreation: c.Bool("boinc-account-creation")}
			srv, err := server.Start(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Printf("momonga-project %s serving: NATS %s", cliutil.Version, srv.ClientURL())
			if u := srv.StatsURL(); u != "" {
				fmt.Printf(", stats %s", u)
			}
			if u := srv.BOINCURL(); u != "" {
				fmt.Printf(", BOINC %s", u)
			}
			if u := srv.LeafURL(); u != "" {
				fmt.Printf(", leaf nodes %s", u)
			}
			fmt.Println()
			if len(leafOf) > 0 {
				fmt.Printf("leaf node of %s: volunteers connect here, their requests go to the core\n", strings.Join(leafOf, ","))
			}
			if external {
				fmt.Println("external NATS: its own accounts and permissions protect the project")
			} else if p := srv.AdminCreds(); p != "" {
				fmt.Printf("project tools: --creds %s\n", p)
			} else {
				fmt.Println("open mode: NATS accepts anyone, with no credentials")
			}
			select {
			case <-ctx.Done():
			case <-srv.Done():
			}
			return srv.Close()
		},
	}
}

// routes splits comma-separated route addresses.
func routes(flags []string) []string {
	var rs []string
	for _, f := range flags {
		for r := range strings.SplitSeq(f, ",") {
			if r = strings.TrimSpace(r); r != "" {
				rs = append(rs, r)
			}
		}
	}
	return rs
}

func dial(c *cli.Context) (context.Context, *admin.Client, func(), error) {
	ctx, stop := cliutil.SignalContext(context.Background())
	adm, err := admin.Dial(ctx, c.String("server"), toolOptions(c)...)
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return ctx, adm, func() { adm.Close(); stop() }, nil
}

func submitCommand() *cli.Command {
	return &cli.Command{
		Name:      "submit",
		Usage:     "submit work units: one per INPUT file (its content is the unit's stdin), or many from --spec",
		ArgsUsage: "[INPUT...]",
		Flags: append(toolFlags(),
			&cli.StringFlag{Name: "app", Usage: "app to run"},
			&cli.StringFlag{Name: "batch", Usage: "batch name (default: app and time)"},
			&cli.IntFlag{Name: "replication", Usage: "replicas of each work unit (default: the app's policy)"},
			&cli.IntFlag{Name: "quorum", Usage: "agreeing results that make a work unit valid (default: the app's policy)"},
			&cli.DurationFlag{Name: "deadline", Value: 7 * 24 * time.Hour, Usage: "time a host has from assignment to report"},
			&cli.StringSliceFlag{Name: "arg", Usage: "argument passed to every unit (repeat for more)"},
			&cli.DurationFlag{Name: "checkpoint", Usage: "how often hosts checkpoint the tasks (default: each volunteer's preference, 60s unless set)"},
			&cli.StringFlag{Name: "spec", Usage: "JSON batch spec: {app, batch, replication, quorum, deadline_seconds, checkpoint_seconds, no_share, limits, units: [{name, args, stdin_file, fpops}]}"},
			&cli.BoolFlag{Name: "no-share", Usage: "compute every unit, even one whose app, args and stdin the project computes or computed for another unit (by default it takes that result)"},
		),
		Action: submit,
	}
}

func cancelCommand() *cli.Command {
	return &cli.Command{
		Name:      "cancel",
		Usage:     "stop a batch's work units, or the ones named: unsent tasks are dropped, running ones aborted at their next heartbeat",
		ArgsUsage: "BATCH [UNIT...]",
		Flags:     toolFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 {
				return fmt.Errorf("usage: momonga-project cancel BATCH [UNIT...]")
			}
			ctx, adm, done, err := dial(c)
			if err != nil {
				return err
			}
			defer done()
			batch := c.Args().First()
			n, err := adm.Cancel(ctx, batch, c.Args().Tail()...)
			if err != nil {
				return err
			}
			fmt.Printf("batch %s: %d work units cancelled (units already valid or in error keep their results)\n", batch, n)
			return nil
		},
	}
}

func submit(c *cli.Context) error {
	var spec submitspec.File
	if p := c.String("spec"); p != "" {
		var err error
		if spec, err = submitspec.Read(p); err != nil {
			return err
		}
	}
	flags := submitspec.Flags{
		App:         submitspec.Setting[string]{Value: c.String("app"), Given: c.IsSet("app")},
		Batch:       submitspec.Setting[string]{Value: c.String("batch"), Given: c.IsSet("batch")},
		Replication: submitspec.Setting[int]{Value: c.Int("replication"), Given: c.IsSet("replication")},
		Quorum:      submitspec.Setting[int]{Value: c.Int("quorum"), Given: c.IsSet("quorum")},
		Deadline:    submitspec.Setting[time.Duration]{Value: c.Duration("deadline"), Given: c.IsSet("deadline")},
		Checkpoint:  submitspec.Setting[time.Duration]{Value: c.Duration("checkpoint"), Given: c.IsSet("checkpoint")},
		Args:        c.StringSlice("arg"),
		ArgsGiven:   c.IsSet("arg"),
		Inputs:      c.Args().Slice(),
		NoShare:     submitspec.Setting[bool]{Value: c.Bool("no-share"), Given: c.IsSet("no-share")},
	}
	s, err := spec.Merge(flags, time.Now())
	if err != nil {
		return err
	}
	ctx, adm, done, err := dial(c)
	if err != nil {
		return err
	}
	defer done()
	if s.Units, err = spec.WorkUnits(flags, func(b []byte) (wu.Hash, error) { return adm.PutBlob(ctx, b) }); err != nil {
		return err
	}
	ids, err := adm.Submit(ctx, s)
	if err != nil {
		return err
	}
	fmt.Printf("batch %s: %d work units submitted\n", s.Batch, len(ids))
	return nil
}

func status(c *cli.Context) error {
	ctx, adm, done, err := dial(c)
	if err != nil {
		return err
	}
	defer done()
	st, err := adm.Status(ctx)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return cliutil.PrintJSON(os.Stdout, st)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "project %s at %s (log entry %d)\n\n", st.Project, st.Now.Format(time.RFC3339), st.Applied)
	fmt.Fprintln(w, "BATCH\tAPP\tUNITS\tVALID\tERROR\tCANCELLED\tPENDING\tTASKS")
	for _, b := range st.Batches {
		var tasks []string
		for s, n := range b.Tasks {
			tasks = append(tasks, fmt.Sprintf("%s=%d", s, n))
		}
		sort.Strings(tasks)
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", b.Name, b.App, b.Units, b.Valid, b.Errored, b.Cancelled, b.Pending, strings.Join(tasks, " "))
	}
	fmt.Fprintln(w, "\nHOST\tNAME\tUSER\tCPUS\tGFLOPS\tCLASS\tRUNNING\tVALID\tINVALID\tLOST\tSTREAK\tCREDIT\tRAC\tLAST SEEN\tSERVER")
	for _, h := range st.Hosts {
		user := h.User
		if h.Revoked {
			user += " (revoked)"
		}
		server := h.Server
		if server == "" {
			server = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%.2f\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%s\t%s\n", h.ID, h.Info.Name, user, h.Info.CPUs, h.Speed/1e9, h.Class, h.Running, h.Valid, h.Invalid, h.Lost, h.Streak, h.Credit, h.RAC, h.LastSeen.Format(time.RFC3339), server)
	}
	if st.HostsTotal > len(st.Hosts) {
		fmt.Fprintf(w, "(%d hosts of %d: those seen most recently)\n", len(st.Hosts), st.HostsTotal)
	}
	printCredit(w, st.Users, st.Teams)
	if st.UsersTotal > len(st.Users) || st.TeamsTotal > len(st.Teams) {
		fmt.Fprintf(w, "(%d users of %d, %d teams of %d: `user list` and `team list` show them all)\n", len(st.Users), st.UsersTotal, len(st.Teams), st.TeamsTotal)
	}
	return w.Flush()
}

func results(c *cli.Context) error {
	if c.NArg() != 1 || c.String("out") == "" {
		return fmt.Errorf("usage: momonga-project results BATCH --out DIR")
	}
	ctx, adm, done, err := dial(c)
	if err != nil {
		return err
	}
	defer done()
	res, err := adm.Results(ctx, c.Args().First())
	if err != nil {
		return err
	}
	out, manifestName := c.String("out"), c.String("manifest")
	if !wu.ValidName(manifestName) {
		return fmt.Errorf("--manifest %q: a file name of letters, digits and . _ - is needed", manifestName)
	}
	for _, u := range res.Units {
		if u.Name == manifestName {
			return fmt.Errorf("work unit %s of batch %s has the manifest's file name; name the manifest otherwise with --manifest NAME", u.Name, res.Batch)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	valid := 0
	for _, u := range res.Units {
		if u.State != wu.WorkUnitValid {
			continue
		}
		b, err := adm.Blob(ctx, u.Output)
		if err != nil {
			return fmt.Errorf("work unit %s: %w", u.Name, err)
		}
		if err := os.WriteFile(filepath.Join(out, u.Name), b, 0o644); err != nil {
			return err
		}
		valid++
	}
	manifest, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(out, manifestName), append(manifest, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("batch %s: %d of %d work units valid, results in %s\n", res.Batch, valid, len(res.Units), out)
	return nil
}
