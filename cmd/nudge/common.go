package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nudge-email/nudge/config"
)

// newFlags makes a command's flag set writing errors to e.stderr.
func newFlags(e *env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("nudge "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: nudge %s %s\n\nFlags:\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args allowing flags after positional arguments
// (`nudge profile a@b.c -c x.yaml`), which the flag package stops at.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// configPath resolves -c: the flag, else ./nudge.yaml, else
// ./config.example.yaml (CONTRACT §1).
func configPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	for _, p := range []string{"nudge.yaml", "config.example.yaml"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// loadConfig loads the resolved config file, or the built-in defaults when
// there is none.
func loadConfig(e *env, flagValue string) (*config.Config, error) {
	p := configPath(flagValue)
	if p == "" {
		fmt.Fprintln(e.stderr, "nudge: no nudge.yaml or config.example.yaml here; using built-in defaults")
		return config.Default(), nil
	}
	return config.Load(p)
}

// loadConfigDir is loadConfig with --data-dir applied, so a command
// finds the files of a server started with `serve --data-dir DIR` (the
// store, the dev webhook keys).
func loadConfigDir(e *env, flagValue, dataDir string) (*config.Config, error) {
	cfg, err := loadConfig(e, flagValue)
	if err == nil && dataDir != "" {
		cfg.DataDir = dataDir
	}
	return cfg, err
}

// printConfigError prints config errors one per line.
func printConfigError(e *env, err error) {
	var list config.ErrorList
	if errors.As(err, &list) {
		for _, item := range list {
			fmt.Fprintln(e.stderr, item.Error())
		}
		return
	}
	fmt.Fprintln(e.stderr, "nudge:", err)
}

// adminClient talks to a running server's admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// serverURL is where a running server listens, as a client reaches it.
func serverURL(cfg *config.Config) string {
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return "http://" + cfg.Listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func newAdminClient(cfg *config.Config) *adminClient {
	return &adminClient{base: serverURL(cfg), token: cfg.Admin.Token, http: &http.Client{Timeout: 2 * time.Minute}}
}

// reachable reports whether a nudge server answers /healthz.
func (a *adminClient) reachable(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// do sends an authenticated request and returns the response, which the
// caller closes; non-2xx answers become errors carrying the server's text.
func (a *adminClient) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, &httpError{status: resp.StatusCode, msg: strings.TrimSpace(string(msg))}
	}
	return resp, nil
}

type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return fmt.Sprintf("server answered %d: %s", e.status, e.msg) }

func emailPath(email string) string { return url.PathEscape(strings.TrimSpace(email)) }
