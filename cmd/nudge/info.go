package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func cmdVersion(_ context.Context, e *env, args []string) int {
	fmt.Fprintf(e.stdout, "nudge %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision", "vcs.time", "vcs.modified":
				fmt.Fprintf(e.stdout, "%s: %s\n", s.Key, s.Value)
			}
		}
	}
	return 0
}

// Topics to subscribe per source; they are what the connectors map.
var (
	shopifyTopics = []string{
		"checkouts/create", "checkouts/update", "carts/create", "carts/update",
		"orders/create", "orders/paid", "orders/fulfilled", "orders/cancelled", "refunds/create",
		"customers/create", "customers/update", "customers_email_marketing_consent/update",
		"products/update", "inventory_levels/update",
	}
	wooTopics    = []string{"order.created", "order.updated", "customer.created", "customer.updated", "product.created", "product.updated"}
	stripeEvents = []string{
		"checkout.session.completed", "checkout.session.expired", "checkout.session.async_payment_succeeded",
		"payment_intent.succeeded", "invoice.paid", "invoice.payment_failed",
		"customer.subscription.created", "customer.subscription.deleted", "charge.refunded",
		"customer.created", "customer.updated",
	}
)

func cmdConnect(_ context.Context, e *env, args []string) int {
	fs := newFlags(e, "connect", "[-c FILE]")
	cfgPath := fs.String("c", "", "config file")
	if _, err := parseFlags(fs, args); err != nil {
		return 2
	}
	cfg, err := loadConfig(e, *cfgPath)
	if err != nil {
		printConfigError(e, err)
		return 1
	}
	base := strings.TrimRight(cfg.PublicURL, "/")
	w := e.stdout
	for i, s := range cfg.Stores {
		fmt.Fprintf(w, "%s store %q (%s)\n", s.Platform, s.ID, s.Name)
		fmt.Fprintf(w, "  URL:     %s/webhooks/%s/%s\n", base, s.Platform, s.ID)
		switch s.Platform {
		case "shopify":
			fmt.Fprintf(w, "  Where:   Shopify admin → Settings → Notifications → Webhooks (format JSON, API version 2025-01 or later), or your app's webhook subscriptions\n")
			fmt.Fprintf(w, "  Topics:  %s\n", strings.Join(shopifyTopics, ", "))
			fmt.Fprintf(w, "  Secret:  stores[%d].webhook_secret (env SHOPIFY_WEBHOOK_SECRET): the key shown under the webhooks list, or your app's client secret\n", i)
		case "woocommerce":
			fmt.Fprintf(w, "  Where:   WooCommerce → Settings → Advanced → Webhooks, one webhook per topic, API version WP REST API v3\n")
			fmt.Fprintf(w, "  Topics:  %s\n", strings.Join(wooTopics, ", "))
			fmt.Fprintf(w, "  Secret:  stores[%d].webhook_secret: the webhook's Secret field\n", i)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "stripe\n  URL:     %s/webhooks/stripe\n", base)
	fmt.Fprintf(w, "  Where:   Stripe dashboard → Developers → Webhooks → Add endpoint (any API version)\n")
	fmt.Fprintf(w, "  Events:  %s\n", strings.Join(stripeEvents, ", "))
	fmt.Fprintf(w, "  Secret:  stripe.webhook_secret (env STRIPE_WEBHOOK_SECRET): the endpoint's signing secret whsec_…\n\n")

	fmt.Fprintf(w, "sendgrid\n  URL:     %s/webhooks/sendgrid\n", base)
	fmt.Fprintf(w, "  Where:   SendGrid → Settings → Mail Settings → Event Webhook; enable Signed Event Webhook\n")
	fmt.Fprintf(w, "  Events:  processed, dropped, delivered, deferred, bounce, open, click, spamreport, unsubscribe, group_unsubscribe, group_resubscribe\n")
	fmt.Fprintf(w, "  Key:     email.sendgrid.webhook_public_key (env SENDGRID_WEBHOOK_PUBLIC_KEY): the verification key shown after enabling signing\n")
	if cfg.Email.SendGrid.WebhookPublicKey == "" {
		fmt.Fprintf(w, "  Note:    not set — the route verifies with a local dev key only (for `nudge trigger sendgrid …`)\n")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "mailgun\n  URL:     %s/webhooks/mailgun\n", base)
	fmt.Fprintf(w, "  Where:   Mailgun → Sending → Webhooks, for the domain %s\n", cfg.Email.Mailgun.Domain)
	fmt.Fprintf(w, "  Events:  delivered, opened, clicked, unsubscribed, complained, permanent_fail, temporary_fail\n")
	fmt.Fprintf(w, "  Key:     email.mailgun.webhook_signing_key (env MAILGUN_WEBHOOK_SIGNING_KEY): the HTTP webhook signing key (not the API key)\n")
	if cfg.Email.Mailgun.WebhookSigningKey == "" {
		fmt.Fprintf(w, "  Note:    not set — the route verifies with a local dev key only (for `nudge trigger mailgun …`)\n")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "storefront tracking\n  Script:  <script async src=\"%s/t.js\" data-key=\"%s\"></script>\n", base, cfg.Tracking.WriteKey)
	fmt.Fprintf(w, "  API:     %s/v1/track, /v1/identify, /v1/page, /v1/batch (Segment HTTP Tracking API; write key as basic-auth user)\n", base)
	fmt.Fprintf(w, "  Key:     tracking.write_key (env NUDGE_WRITE_KEY); allowed page origins: %s\n", strings.Join(cfg.Tracking.AllowedOrigins, ", "))
	return 0
}
