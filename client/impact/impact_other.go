//go:build !linux

package impact

import (
	"context"
	"errors"
)

// Run measures through /proc, which only Linux has.
func Run(context.Context, Config) (Result, error) {
	return Result{}, errors.New("bench impact measures the client through /proc: it runs on Linux only")
}
