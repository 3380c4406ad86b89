// Command echo is the well-behaved test module: it shows that arguments,
// stdin, the task directory and stdout all reach the module and back.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "read stdin:", err)
		os.Exit(1)
	}
	input, err := os.ReadFile("/input.txt")
	if err != nil {
		fmt.Fprintln(os.Stderr, "read input:", err)
		os.Exit(1)
	}
	if err := os.WriteFile("/written.txt", []byte(strings.ToUpper(string(input))), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "write file:", err)
		os.Exit(1)
	}
	fmt.Printf("argv0=%s\nargs=%s\nstdin=%s\ninput=%s\nenv=%d\n",
		os.Args[0], strings.Join(os.Args[1:], ","), in, input, len(os.Environ()))
	if len(os.Args) > 1 && os.Args[1] == "fail" {
		fmt.Fprintln(os.Stderr, "first line\nasked to fail")
		os.Exit(3)
	}
}
