package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/client/eventlog"
	"github.com/momonga-project/momonga/cmd/internal/cliutil"
)

// uiCommand opens the running client's page in the browser, with the token
// once in the address, as Jupyter does; the page then keeps a cookie.
func uiCommand() *cli.Command {
	return &cli.Command{
		Name:  "ui",
		Usage: "open the client's web page in your browser",
		Flags: []cli.Flag{
			dataFlag,
			&cli.BoolFlag{Name: "no-browser", Usage: "print the page's address (with its one-time token) instead of opening a browser"},
		},
		Action: func(c *cli.Context) error {
			dir := c.String("data")
			if _, err := control.Dial(dir); err != nil {
				return err
			}
			link, err := pageLink(dir)
			if err != nil {
				return err
			}
			if !c.Bool("no-browser") {
				if err := openBrowser(link); err == nil {
					fmt.Fprintf(c.App.Writer, "opened %s in your browser\n", strings.SplitN(link, "?", 2)[0])
					return nil
				}
			}
			fmt.Fprintf(c.App.Writer, "open this address in a browser on this computer (it holds the token of %s; do not share it):\n%s\n", filepath.Join(dir, control.TokenFile), link)
			return nil
		},
	}
}

// pageLink is the page's address with the token.
func pageLink(dir string) (string, error) {
	addr, err := os.ReadFile(filepath.Join(dir, control.AddrFile))
	if err != nil {
		return "", fmt.Errorf("%w for %s (start it with `momonga run`)", control.ErrNotRunning, dir)
	}
	token, err := os.ReadFile(filepath.Join(dir, control.TokenFile))
	if err != nil {
		return "", fmt.Errorf("control token: %w (run as the user who runs the client)", err)
	}
	return "http://" + strings.TrimSpace(string(addr)) + "/?token=" + url.QueryEscape(strings.TrimSpace(string(token))), nil
}

func openBrowser(link string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", link)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", link)
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return errors.New("no graphical session")
		}
		cmd = exec.Command("xdg-open", link)
	}
	return cmd.Start()
}

// logCommand prints the event log from the data directory: it needs no
// running client.
func logCommand() *cli.Command {
	return &cli.Command{
		Name:  "log",
		Usage: "show the client's event log: tasks started, suspended and why, checkpoints, uploads, errors",
		Flags: []cli.Flag{
			dataFlag,
			jsonFlag,
			&cli.IntFlag{Name: "lines", Aliases: []string{"n"}, Usage: "how many of the newest entries (0: all)", Value: 50},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new entries until interrupted"},
		},
		Action: func(c *cli.Context) error {
			dir := c.String("data")
			entries, err := eventlog.Read(dir, c.Int("lines"))
			if err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(dir, eventlog.File)); errors.Is(err, os.ErrNotExist) && len(entries) == 0 {
				return fmt.Errorf("no event log in %s yet: it starts with `momonga run`", dir)
			}
			if !c.Bool("follow") {
				if c.Bool("json") {
					return cliutil.PrintJSON(c.App.Writer, entries)
				}
				printEntries(c.App.Writer, entries)
				return nil
			}
			ctx, stop := cliutil.SignalContext(c.Context)
			defer stop()
			return followLog(ctx, c.App.Writer, dir, entries, c.Bool("json"))
		},
	}
}

func printEntries(w io.Writer, entries []eventlog.Entry) {
	for _, e := range entries {
		fmt.Fprintln(w, e.String())
	}
}

// followLog prints entries newer than the last one printed, as they come.
func followLog(ctx context.Context, w io.Writer, dir string, printed []eventlog.Entry, asJSON bool) error {
	emit := func(es []eventlog.Entry) {
		for _, e := range es {
			if asJSON {
				_ = json.NewEncoder(w).Encode(e)
			} else {
				fmt.Fprintln(w, e.String())
			}
		}
	}
	emit(printed)
	var last time.Time
	seen := 0 // entries at last's time already printed
	for _, e := range printed {
		if e.Time.Equal(last) {
			seen++
		} else {
			last, seen = e.Time, 1
		}
	}
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
		}
		all, err := eventlog.Read(dir, 0)
		if err != nil {
			return err
		}
		var fresh []eventlog.Entry
		same := 0
		for _, e := range all {
			switch {
			case e.Time.After(last):
				fresh = append(fresh, e)
			case e.Time.Equal(last):
				same++
				if same > seen {
					fresh = append(fresh, e)
				}
			}
		}
		emit(fresh)
		for _, e := range fresh {
			if e.Time.Equal(last) {
				seen++
			} else {
				last, seen = e.Time, 1
			}
		}
	}
}
