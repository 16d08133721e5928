package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors/shopify"
	"github.com/nudge-email/nudge/connectors/stripe"
	"github.com/nudge-email/nudge/connectors/web"
	"github.com/nudge-email/nudge/connectors/woocommerce"
)

// signedSample is one request `nudge trigger` posts.
type signedSample struct {
	path   string
	body   []byte
	header http.Header
}

func cmdTrigger(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "trigger", "SOURCE TOPIC [--email E] [--url URL] [--store ID] [--data-dir DIR] [-c FILE]")
	cfgPath := fs.String("c", "", "config file")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir, as for serve)")
	email := fs.String("email", "", "customer email to put in the sample (default: the sample's own)")
	target := fs.String("url", "", "base URL of the running server (default: from listen)")
	storeID := fs.String("store", "", "store id for shopify/woocommerce (default: the first of that platform)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 2 {
		fs.Usage()
		fmt.Fprintln(e.stderr, "\nExamples: shopify checkouts/create, woocommerce order.created, stripe checkout.session.expired, sendgrid open, mailgun clicked, web product_viewed")
		return 2
	}
	cfg, err := loadConfigDir(e, *cfgPath, *dataDir)
	if err != nil {
		printConfigError(e, err)
		return 1
	}
	s, err := buildSample(cfg, pos[0], pos[1], strings.TrimSpace(*email), *storeID, time.Now())
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge trigger:", err)
		return 1
	}
	base := strings.TrimRight(*target, "/")
	if base == "" {
		base = serverURL(cfg)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+s.path, bytes.NewReader(s.body))
	if err != nil {
		fmt.Fprintln(e.stderr, "nudge trigger:", err)
		return 1
	}
	req.Header = s.header
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		fmt.Fprintf(e.stderr, "nudge trigger: %v (is `nudge serve` running at %s?)\n", err, base)
		return 1
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(e.stdout, "POST %s%s → %d %s\n", base, s.path, resp.StatusCode, strings.TrimSpace(string(answer)))
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}

func storeFor(cfg *config.Config, platform, id string) (config.Store, error) {
	for _, s := range cfg.Stores {
		if s.Platform == platform && (id == "" || s.ID == id) {
			return s, nil
		}
	}
	if id != "" {
		return config.Store{}, fmt.Errorf("no %s store %q in the config", platform, id)
	}
	return config.Store{}, fmt.Errorf("no %s store in the config", platform)
}

// buildSample makes a realistic payload for source/topic, signed the way
// the provider signs it, with the configured secret.
func buildSample(cfg *config.Config, source, topic, email, storeID string, now time.Time) (signedSample, error) {
	switch source {
	case "shopify":
		st, err := storeFor(cfg, "shopify", storeID)
		if err != nil {
			return signedSample{}, err
		}
		body, h, err := shopify.Sample(topic, email, now)
		if err != nil {
			return signedSample{}, err // it lists the topics
		}
		h.Set("X-Shopify-Hmac-Sha256", shopify.Sign(st.WebhookSecret, body))
		return signedSample{path: "/webhooks/shopify/" + st.ID, body: body, header: h}, nil
	case "woocommerce":
		st, err := storeFor(cfg, "woocommerce", storeID)
		if err != nil {
			return signedSample{}, err
		}
		body, h, err := woocommerce.Sample(topic, email, now)
		if err != nil {
			return signedSample{}, err // it lists the topics
		}
		h.Set("X-WC-Webhook-Signature", woocommerce.Sign(st.WebhookSecret, body))
		return signedSample{path: "/webhooks/woocommerce/" + st.ID, body: body, header: h}, nil
	case "stripe":
		if cfg.Stripe.WebhookSecret == "" {
			return signedSample{}, fmt.Errorf("stripe.webhook_secret is not set")
		}
		body, h, err := stripe.Sample(topic, email, now)
		if err != nil {
			return signedSample{}, fmt.Errorf("%w (events: %s)", err, strings.Join(stripe.SampleTypes(), ", "))
		}
		h.Set("Stripe-Signature", stripe.Sign(cfg.Stripe.WebhookSecret, body, now))
		return signedSample{path: "/webhooks/stripe", body: body, header: h}, nil
	case "web":
		path, body, h, err := web.Sample(topic, email, cfg.Tracking.WriteKey)
		if err != nil {
			return signedSample{}, fmt.Errorf("%w (events: %s)", err, strings.Join(web.SampleEvents(), ", "))
		}
		return signedSample{path: path, body: body, header: h}, nil
	case "sendgrid", "mailgun":
		return espSample(cfg, source, topic, email, now)
	}
	return signedSample{}, fmt.Errorf("unknown source %q (shopify, woocommerce, stripe, sendgrid, mailgun, web)", source)
}
