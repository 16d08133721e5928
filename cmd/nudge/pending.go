package main

import (
	"context"
	"fmt"
)

// TEMPORARY during integration; replaced before the issue is closed.
func notYet(name string) func(context.Context, *env, []string) int {
	return func(_ context.Context, e *env, _ []string) int {
		fmt.Fprintf(e.stderr, "nudge %s: not wired yet\n", name)
		return 1
	}
}

var (
	cmdInsights = notYet("insights")
)
