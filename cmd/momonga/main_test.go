package main

import (
	"strings"
	"testing"
)

func TestVersionAndHelp(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"--help"}, {"run", "--help"}, {"attach", "--help"}} {
		var out strings.Builder
		a := app()
		a.Writer = &out
		if err := a.Run(append([]string{"momonga"}, args...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if out.Len() == 0 {
			t.Errorf("%v printed nothing", args)
		}
	}
	var out strings.Builder
	a := app()
	a.Writer = &out
	a.ErrWriter = &out
	if err := a.Run([]string{"momonga", "run", "--data", t.TempDir()}); err == nil || !strings.Contains(err.Error(), "momonga attach") {
		t.Errorf("run without --project on a host never attached: %v", err)
	}
}
