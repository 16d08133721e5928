// Command serveprof runs nudge in-process exactly as `nudge serve` does
// (app.Open + Serve) with net/http/pprof on a second loopback port, so an
// ingest or scheduler benchmark can be profiled:
//
//	serveprof -c nudge.yaml -pprof 127.0.0.1:6060 &
//	go tool pprof -top http://127.0.0.1:6060/debug/pprof/profile?seconds=10
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // the profiling endpoints are the point of this command
	"os"
	"os/signal"
	"syscall"

	"github.com/nudge-email/nudge/app"
	"github.com/nudge-email/nudge/config"
)

func main() {
	cfgPath := flag.String("c", "nudge.yaml", "config file")
	pprofAddr := flag.String("pprof", "127.0.0.1:6060", "pprof listen address (loopback)")
	flag.Parse()
	app.TuneGC(os.Getenv) // as the nudge binary runs
	if err := run(*cfgPath, *pprofAddr); err != nil {
		fmt.Fprintln(os.Stderr, "serveprof:", err)
		os.Exit(1)
	}
}

func run(cfgPath, pprofAddr string) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	go func() { _ = http.ListenAndServe(pprofAddr, nil) }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.Open(ctx, cfg, app.Options{Logger: logger})
	if err != nil {
		return err
	}
	serveErr := a.Serve(ctx, cfg.Listen)
	if err := a.Close(); err != nil {
		return err
	}
	return serveErr
}
