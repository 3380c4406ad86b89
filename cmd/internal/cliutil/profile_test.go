package cliutil

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestCPUProfile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cpu.prof")
	stop, err := CPUProfile(p)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
		t.Fatalf("profile %v %v", fi, err)
	}
	none, err := CPUProfile("")
	if err != nil {
		t.Fatal(err)
	}
	none()
	if _, err := CPUProfile(filepath.Join(t.TempDir(), "no", "such", "dir", "p")); err == nil {
		t.Fatal("profile into a missing directory succeeded")
	}
}

func TestBenchContextProfilesUntilStopped(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cpu.prof")
	app := &cli.App{
		Flags: []cli.Flag{&cli.StringFlag{Name: "cpuprofile"}},
		Action: func(c *cli.Context) error {
			ctx, stop, err := BenchContext(c)
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				t.Error("context ended before stop")
			}
			stop()
			if ctx.Err() == nil {
				t.Error("context still live after stop")
			}
			return nil
		},
	}
	if err := app.Run([]string{"x", "--cpuprofile", p}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
		t.Fatalf("profile %v %v", fi, err)
	}
	if err := app.Run([]string{"x", "--cpuprofile", filepath.Join(t.TempDir(), "no", "such", "dir", "p")}); err == nil {
		t.Fatal("profile into a missing directory succeeded")
	}
}
