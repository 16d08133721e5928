// Command loadgen posts correctly signed webhooks (Shopify orders and
// checkouts, SendGrid event batches) or Segment batches to a running nudge
// (or the no-store baseline) at a given concurrency or rate, and reports
// throughput, p50/p90/p99/max latency and errors by status.
//
//	loadgen -url http://127.0.0.1:8080 -secret dev-secret -kind shopify-order -c 64 -duration 20s
//	loadgen -url ... -kind shopify-order -rate 1000 -duration 20s
//
// Every request carries new event ids (and a new order or checkout id), so
// each one is stored as a new record; -profiles spreads them over that
// many customers. The report goes to stdout as one text line, and as JSON
// to -json FILE when given.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/nudge-email/nudge/app"
	"github.com/nudge-email/nudge/bench/load"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		url      = flag.String("url", "http://127.0.0.1:8080", "server base URL")
		secret   = flag.String("secret", "dev-secret", "Shopify webhook secret")
		store    = flag.String("store", "main", "Shopify store id")
		kind     = flag.String("kind", "shopify-order", "shopify-order | shopify-checkout | sendgrid-batch | segment-batch")
		conc     = flag.Int("c", 64, "concurrency (closed loop) or most requests in flight (open loop)")
		rate     = flag.Float64("rate", 0, "offered requests per second (open loop); 0 = closed loop")
		n        = flag.Int("n", 0, "number of requests (0 = until -duration)")
		dur      = flag.Duration("duration", 10*time.Second, "how long to run")
		warmup   = flag.Int("warmup", 200, "unmeasured requests first")
		profiles = flag.Int("profiles", 0, "distinct customers (0 = one per request)")
		batch    = flag.Int("batch", 10, "events per SendGrid / Segment batch")
		sgDir    = flag.String("sendgrid-key-dir", "", "dir holding (or to create) dev-sendgrid-webhook-key.pem, as nudge keeps it in its data dir")
		writeKey = flag.String("write-key", "dev-write-key", "tracking write key")
		order    = flag.String("order-file", "", "Shopify order JSON to use as the body template (default: Shopify's sample order)")
		label    = flag.String("label", "", "target label in the report (nudge, baseline)")
		jsonOut  = flag.String("json", "", "also write the report as JSON to this file")
	)
	flag.Parse()
	gc := load.GenConfig{Kind: *kind, Store: *store, ShopifySecret: *secret, WriteKey: *writeKey,
		Profiles: *profiles, Batch: *batch, ShopifyOrderFile: *order}
	if *kind == "sendgrid-batch" {
		if *sgDir == "" {
			fmt.Fprintln(os.Stderr, "loadgen: sendgrid-batch needs -sendgrid-key-dir")
			return 2
		}
		k, _, err := app.DevSendGridKey(*sgDir, true)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 1
		}
		gc.SendGridKey = k
	}
	g, err := load.NewGenerator(gc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := load.Run(ctx, g, load.RunConfig{URL: *url, Concurrency: *conc, Rate: *rate, N: *n, Duration: *dur, Warmup: *warmup})
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	rep.Target = *label
	fmt.Println(rep.Text())
	if *jsonOut != "" {
		if err := os.WriteFile(*jsonOut, append(rep.JSON(), '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 1
		}
	}
	if rep.OK == 0 {
		return 1
	}
	return 0
}
