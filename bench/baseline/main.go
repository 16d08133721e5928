// Command baseline is the no-store reference server of the ingest
// benchmark: nudge's own HTTP stack (server.New: gin, body limit, request
// log, recovery) with the same Shopify and SendGrid receivers and the same
// tracking handler, verifying signatures and normalizing every delivery,
// but answering 200 without storing anything. The ratio of nudge's
// throughput to this server's is the cost of durable storage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"net/http"
	_ "net/http/pprof" // only served with -pprof

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/app"
	"github.com/nudge-email/nudge/connectors/sendgrid"
	"github.com/nudge-email/nudge/connectors/shopify"
	"github.com/nudge-email/nudge/connectors/web"
	"github.com/nudge-email/nudge/server"
	"github.com/nudge-email/nudge/storage"
)

// discard is a Store that accepts every ingest and keeps nothing. Only
// Append and Stats are called on the webhook and tracking paths; the
// embedded nil Store makes any other call fail loudly.
type discard struct{ storage.Store }

func (discard) Append(_ context.Context, in storage.Ingest) (storage.AppendResult, error) {
	return storage.AppendResult{New: in.Records}, nil
}

func (discard) Stats(context.Context) (storage.Stats, error) { return storage.Stats{}, nil }

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address")
	secret := flag.String("secret", "dev-secret", "Shopify webhook secret")
	store := flag.String("store", "main", "Shopify store id")
	sgDir := flag.String("sendgrid-key-dir", "", "dir with dev-sendgrid-webhook-key.pem (created if missing)")
	writeKey := flag.String("write-key", "dev-write-key", "tracking write key")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (loopback), to compare profiles with bench/serveprof")
	flag.Parse()
	if *pprofAddr != "" {
		go func() { _ = http.ListenAndServe(*pprofAddr, nil) }()
	}
	if err := run(*listen, *secret, *store, *sgDir, *writeKey); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(listen, secret, storeID, sgDir, writeKey string) error {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	hooks := []server.Webhook{{Source: "shopify", Store: storeID, Receiver: shopify.New(shopify.Config{StoreID: storeID, Secret: secret, Currency: "USD"})}}
	if sgDir != "" {
		_, pub, err := app.DevSendGridKey(sgDir, true)
		if err != nil {
			return err
		}
		r, err := sendgrid.NewReceiver(sendgrid.ReceiverConfig{PublicKey: pub})
		if err != nil {
			return err
		}
		hooks = append(hooks, server.Webhook{Source: "sendgrid", Receiver: r})
	}
	wh, err := web.New(web.Config{WriteKey: writeKey, RatePerIP: -1, RatePerKey: -1, StoreID: storeID}, discard{}, web.Options{Logger: logger})
	if err != nil {
		return err
	}
	srv, err := server.New(server.Options{Store: discard{}, Webhooks: hooks, Mounts: []func(gin.IRouter){wh.Register},
		AdminToken: "baseline-has-no-admin", Logger: logger})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hs := &http.Server{Addr: listen, Handler: srv.Handler()}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	fmt.Fprintln(os.Stderr, "baseline listening on", listen)
	if err := hs.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}
