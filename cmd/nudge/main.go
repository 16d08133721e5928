// Command nudge is the single binary: server, rule tooling and data tools.
// Subcommands are listed by `nudge help`; wiring lives in package app.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/nudge-email/nudge/app"
)

// command is one subcommand: it parses its own flags from args and returns
// the process exit code.
type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) int
}

// env carries the process's streams so tests can run commands in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// importChunk overrides the size of the pieces `nudge import` sends
	// a running server (0: importChunk), so tests can cut small files.
	importChunk int
}

func commands() map[string]command {
	return map[string]command{
		"serve":    {"run the server, scheduler and sender until SIGINT/SIGTERM", cmdServe},
		"check":    {"validate the config and every rule file", cmdCheck},
		"test":     {"run rule unit-test files", cmdTest},
		"backtest": {"replay stored history through the rules without sending", cmdBacktest},
		"explain":  {"show why a profile's journeys started, sent, waited or stopped", cmdExplain},
		"preview":  {"render a rule step for a real profile", cmdPreview},
		"trigger":  {"sign a realistic sample webhook and post it to a running server", cmdTrigger},
		"connect":  {"print the webhook URLs, topics and secret keys to configure", cmdConnect},
		"profile":  {"show a profile", cmdProfile},
		"export":   {"export everything held about a person as JSON", cmdExport},
		"forget":   {"erase a person everywhere", cmdForget},
		"import":   {"backfill history from records-ndjson or store order exports", cmdImport},
		"insights": {"fit the models and print them", cmdInsights},
		"backup":   {"write a consistent snapshot of the store", cmdBackup},
		"version":  {"print version and build info", cmdVersion},
	}
}

func main() {
	app.TuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, e *env, args []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "nudge: unknown command %q\n\n", args[0])
		usage(e.stderr, cmds)
		return 2
	}
	return c.run(ctx, e, args[1:])
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "nudge — behavior-triggered email for small shops")
	fmt.Fprintln(w, "\nUsage: nudge <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun `nudge <command> -h` for a command's flags.")
}
