// Package config loads nudge's YAML configuration (CONTRACT §2): ${VAR}
// and ${VAR:-default} expansion from the environment, strict decoding with
// file:line:col errors, defaults and validation.
package config

import (
	"time"
)

// Config is the whole configuration file.
type Config struct {
	Listen    string        `yaml:"listen"`
	DataDir   string        `yaml:"data_dir"`
	PublicURL string        `yaml:"public_url"`
	Admin     Admin         `yaml:"admin"`
	Timezone  string        `yaml:"timezone"`
	Stores    []Store       `yaml:"stores"`
	Stripe    Stripe        `yaml:"stripe"`
	Tracking  Tracking      `yaml:"tracking"`
	Email     Email         `yaml:"email"`
	Policies  Policies      `yaml:"policies"`
	Rules     []string      `yaml:"rules"`
	Insights  Insights      `yaml:"insights"`
	Storage   StorageConfig `yaml:"storage"`
	// Retention is how long records and raw deliveries are kept (default 400d).
	Retention Duration `yaml:"retention"`
	// Secret signs unsubscribe and identify tokens; when unset it is
	// derived from the admin token (SecretForTokens) so tokens survive
	// restarts.
	Secret string `yaml:"secret"`
	// MaxBodyBytes limits webhook bodies (default 1 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// TrustedProxies are the addresses or CIDR ranges of reverse proxies
	// whose X-Forwarded-For / X-Real-IP headers name the client; empty
	// (the default) trusts none, so a client cannot choose the address
	// the per-IP rate limits and login throttling see.
	TrustedProxies []string `yaml:"trusted_proxies"`

	// Path is the file the config was loaded from ("" for defaults);
	// rule globs are relative to its directory.
	Path string `yaml:"-"`
}

// Admin protects /admin and /api.
type Admin struct {
	Token string `yaml:"token"`
}

// Store is one Shopify or WooCommerce shop.
type Store struct {
	ID                    string `yaml:"id"`
	Platform              string `yaml:"platform"` // shopify | woocommerce
	Name                  string `yaml:"name"`
	URL                   string `yaml:"url"`
	Currency              string `yaml:"currency"`
	WebhookSecret         string `yaml:"webhook_secret"`
	PreviousWebhookSecret string `yaml:"previous_webhook_secret"`
}

// Stripe holds the Stripe endpoint secret(s).
type Stripe struct {
	WebhookSecret string `yaml:"webhook_secret"`
	// PreviousWebhookSecret is accepted too while a rolled secret phases out.
	PreviousWebhookSecret string `yaml:"previous_webhook_secret"`
	// Store names the store whose currency and name Stripe records use.
	Store string `yaml:"store"`
}

// Tracking configures /v1/* and /t.js.
type Tracking struct {
	WriteKey       string   `yaml:"write_key"`
	AllowedOrigins []string `yaml:"allowed_origins"`
	// RequireConsent stores nothing until the page signals consent.
	RequireConsent bool `yaml:"require_consent"`
	// RatePerIP and RatePerKey are events per second (bursts of 4×).
	RatePerIP  float64 `yaml:"rate_per_ip"`
	RatePerKey float64 `yaml:"rate_per_key"`
}

// Address is a sender address.
type Address struct {
	Email string `yaml:"email"`
	Name  string `yaml:"name"`
}

// Email chooses and configures the provider.
type Email struct {
	Provider string   `yaml:"provider"` // log | sendgrid | mailgun
	From     Address  `yaml:"from"`
	ReplyTo  Address  `yaml:"reply_to"`
	SendGrid SendGrid `yaml:"sendgrid"`
	Mailgun  Mailgun  `yaml:"mailgun"`
}

// SendGrid configures sending through and receiving events from SendGrid.
type SendGrid struct {
	APIKey           string `yaml:"api_key"`
	APIBase          string `yaml:"api_base"`
	WebhookPublicKey string `yaml:"webhook_public_key"`
	// UnsubscribeGroup is an ASM group id added to every send (0 = none).
	UnsubscribeGroup int `yaml:"unsubscribe_group"`
}

// Mailgun configures sending through and receiving events from Mailgun.
type Mailgun struct {
	APIKey            string `yaml:"api_key"`
	Domain            string `yaml:"domain"`
	APIBase           string `yaml:"api_base"`
	WebhookSigningKey string `yaml:"webhook_signing_key"`
}

// Policies gate every send.
type Policies struct {
	RequireConsent    bool         `yaml:"require_consent"`
	FrequencyCap      FrequencyCap `yaml:"frequency_cap"`
	QuietHours        QuietHours   `yaml:"quiet_hours"`
	AttributionWindow Duration     `yaml:"attribution_window"`
	// AttributeOpens counts opens (not only clicks) as touches (default
	// true, as CONTRACT §2's "click/open"). Only human opens count:
	// privacy proxies' machine opens (Apple Mail Privacy Protection) are
	// never touches, so the default does not credit every delivered mail.
	AttributeOpens bool `yaml:"attribute_opens"`
}

// FrequencyCap limits sends per profile across all rules.
type FrequencyCap struct {
	Max int      `yaml:"max"`
	Per Duration `yaml:"per"`
}

// QuietHours is a daily window, in the customer's local time, with no sends.
type QuietHours struct {
	Start string `yaml:"start"` // "21:00"
	End   string `yaml:"end"`   // "08:00"
}

// Insights tunes the models.
type Insights struct {
	// InactiveAfter emits became_inactive after this long with no
	// engagement (default 90d).
	InactiveAfter Duration `yaml:"inactive_after"`
	// InactivePAlive emits became_inactive when P(alive) falls below it
	// (default 0.3).
	InactivePAlive float64 `yaml:"inactive_p_alive"`
	// ReplenishLead emits replenishment_due this long before the expected
	// reorder date (default 3d).
	ReplenishLead Duration `yaml:"replenish_lead"`
	// RefitEvery is how often models are refitted (default 24h).
	RefitEvery Duration `yaml:"refit_every"`
}

// StorageConfig tunes the bbolt store.
type StorageConfig struct {
	// KeepRaw keeps raw webhook bodies (default true).
	KeepRaw *bool `yaml:"keep_raw"`
	// MaxBatchDelay is the longest the store's group commit holds a group
	// open for more writes while commits run back to back (default 2ms;
	// 0: never). A lone webhook never waits for it (bench/README.md).
	MaxBatchDelay Duration `yaml:"max_batch_delay"`
}

// Duration is a time.Duration that reads Go syntax plus d and w
// ("90m", "36h", "7d", "2w").
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
