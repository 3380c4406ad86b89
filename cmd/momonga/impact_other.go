//go:build !linux

package main

import (
	"context"
	"errors"
)

// runImpact measures through /proc, which only Linux has.
func runImpact(context.Context, impactConfig) (impactResult, error) {
	return impactResult{}, errors.New("bench impact measures the client through /proc: it runs on Linux only")
}
