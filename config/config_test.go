package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over a fixed map.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestParseBadFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want []string
	}{
		{"unknown-keys.bad.yaml", []string{
			`4:3: admin: unknown key "tokn"; did you mean "token"?`,
			`9:5: stores[0]: unknown key "secrt"`,
			`12:5: email.sendgrid: unknown key "apikey"; did you mean "api_key"?`,
			`13:1: config: unknown key "colour"`,
		}},
		{"unset-env.bad.yaml", []string{
			`7:14: email.sendgrid.api_key: environment variable SENDGRID_API_KEY is not set`,
			`9:11: data_dir: invalid environment variable name "BAD-NAME" in ${BAD-NAME}`,
		}},
		{"bad-values.bad.yaml", []string{
			`1:9: listen: "localhost" is not host:port (e.g. 127.0.0.1:8080 or :8080)`,
			`2:13: public_url: "ftp://example.com" is not an absolute http(s) URL`,
			`4:11: timezone: unknown time zone "Mars/Olympus" (use an IANA name such as Europe/Berlin)`,
			`6:9: stores[0].id: "Main_Store" must match [a-z0-9-]+ (it appears in the webhook URL)`,
			`7:15: stores[0].platform: "magento" is not one of shopify | woocommerce`,
			`9:10: stores[0].url: "example.com" is not an absolute http(s) URL`,
			`10:15: stores[0].currency: "DOLLARS" is not an ISO 4217 code such as USD`,
			`14:5: stores[2].webhook_secret: required: webhooks cannot be verified without it`,
			`14:9: stores[2].id: duplicate store id "shop" (also stores[1])`,
			`16:5: stores[3].id: required`,
			`19:10: stripe.store: no store with id "nowhere"`,
			`21:21: tracking.allowed_origins[0]: "https://example.com/path" is not an origin such as https://example.com (or *)`,
			`22:16: tracking.rate_per_ip: must not be negative (0 means unlimited)`,
			`24:13: email.provider: "postmark" is not one of log | sendgrid | mailgun`,
			`25:18: email.from.email: "not an address" is not an email address`,
			`27:25: policies.frequency_cap.max: must not be negative (0 means no cap)`,
			`27:34: policies.frequency_cap.per: invalid duration "1fortnight" (examples: 90m, 36h, 7d, 2w)`,
			`28:25: policies.quiet_hours.start: "25:00" is not a time of day HH:MM (00:00 to 23:59)`,
			`28:39: policies.quiet_hours.end: "8:00" is not a time of day HH:MM (00:00 to 23:59)`,
			`29:23: policies.attribution_window: must be positive`,
			`31:21: insights.inactive_p_alive: must be between 0 and 1, got 1.5`,
			`33:20: storage.max_batch_delay: 5s is too long: every webhook answer waits up to this long (use a few milliseconds)`,
			`34:9: secret: too short: use at least 16 characters`,
			`35:33: trusted_proxies[1]: "proxy.local" is not an IP address or CIDR range (e.g. 10.0.0.0/8)`,
		}},
		{"sendgrid.bad.yaml", []string{
			`6:5: email.sendgrid.api_key: required when email.provider is sendgrid`,
			`7:25: email.sendgrid.webhook_public_key: not a DER-encoded public key (copy it from SendGrid's Mail Settings > Signed Event Webhook)`,
		}},
		{"mailgun.bad.yaml", []string{
			`3:13: email.from.email: required to send through mailgun`,
			`5:5: email.mailgun.api_key: required when email.provider is mailgun`,
			`5:5: email.mailgun.domain: required when email.provider is mailgun`,
			`5:15: email.mailgun.api_base: "https://api.eu.mailgun.net" must end in /v3 (e.g. https://api.eu.mailgun.net/v3)`,
		}},
		{"syntax.bad.yaml", []string{
			`2:1: invalid YAML: did not find expected ',' or ']'`,
		}},
		{"types.bad.yaml", []string{
			`1:9: listen: expected a string, got a list`,
			`2:8: admin: expected a mapping of keys, got "token"`,
			`3:9: stores: expected a list, got a mapping`,
			`4:17: max_body_bytes: "lots" is not an integer`,
			`6:20: tracking.require_consent: "maybe" is not a boolean (true or false)`,
			`7:17: tracking.rate_per_key: "fast" is not a number`,
			`9:16: policies.quiet_hours: expected a mapping of keys, got "21:00-08:00"`,
			`10:8: rules: expected a list, got a mapping`,
		}},
		{"duplicate-key.bad.yaml", []string{
			`4:1: admin: duplicate key (first at line 1)`,
			`8:3: email.provider: duplicate key (first at line 7)`,
		}},
		{"no-admin.bad.yaml", []string{
			`1:1: admin.token: required (the bearer token for /admin and /api; it also keys unsubscribe links unless secret is set)`,
			`5:21: stores[0].webhook_secret: required: webhooks cannot be verified without it`,
		}},
		{"two-documents.bad.yaml", []string{
			`2:1: the file holds more than one YAML document; nudge reads exactly one`,
		}},
		{"not-a-mapping.bad.yaml", []string{
			`1:1: the configuration: expected a mapping of keys, got a list`,
		}},
		{"rules.bad.yaml", []string{
			`3:5: rules[0]: invalid glob "rules.d/[.yaml": syntax error in pattern`,
			`4:5: rules[1]: empty rule glob`,
		}},
	}
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("testdata has %d *.bad.yaml files, the table %d: every bad file needs its expected errors", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", tt.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(data, path, env(map[string]string{"HOME_DIR": "/srv"}))
			if err == nil {
				t.Fatalf("Parse succeeded: %v", cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config along with errors")
			}
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = path + ":" + w
			}
			if got := err.Error(); got != strings.Join(want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) != len(want) {
				t.Fatalf("errors.As ErrorList = %v (len %d), want %d items", list, len(list), len(want))
			}
			var one *Error
			if !errors.As(err, &one) || one.File != path {
				t.Errorf("errors.As(*Error) = %+v", one)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file = %v, want os.ErrNotExist", err)
	}
}

// exampleEnv sets every secret of CONTRACT §2 through its variable.
var exampleEnv = map[string]string{
	"NUDGE_LISTEN":                "0.0.0.0:9000",
	"NUDGE_DATA_DIR":              "/var/lib/nudge",
	"NUDGE_PUBLIC_URL":            "https://nudge.shop.example/",
	"NUDGE_ADMIN_TOKEN":           "admin-token-from-env",
	"SHOPIFY_WEBHOOK_SECRET":      "shpss_from_env",
	"STRIPE_WEBHOOK_SECRET":       "whsec_from_env",
	"NUDGE_WRITE_KEY":             "write-key-from-env",
	"NUDGE_EMAIL_PROVIDER":        "mailgun",
	"SENDGRID_API_KEY":            "SG.from-env",
	"SENDGRID_API_BASE":           "https://api.eu.sendgrid.com",
	"MAILGUN_API_KEY":             "key-from-env",
	"MAILGUN_DOMAIN":              "mg.shop.example",
	"MAILGUN_API_BASE":            "https://api.eu.mailgun.net/v3",
	"MAILGUN_WEBHOOK_SIGNING_KEY": "signing-key-from-env",
}

func TestExampleLoadsWithoutEnvironment(t *testing.T) {
	t.Parallel()
	const path = "../config.example.yaml"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data, path, env(nil))
	if err != nil {
		t.Fatalf("the example must load with no environment: %v", err)
	}
	want := Default()
	want.Path = path
	if !reflect.DeepEqual(got, want) {
		t.Errorf("example config differs from Default():\n got %#v\nwant %#v", *got, *want)
	}
	if got.Email.Provider != "log" {
		t.Errorf("example provider = %q, want the log sender", got.Email.Provider)
	}
}

func TestExampleSecretsFromEnvironment(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The public key is validated, so it needs a real one.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"SENDGRID_WEBHOOK_PUBLIC_KEY": base64.StdEncoding.EncodeToString(der)}
	for k, v := range exampleEnv {
		vars[k] = v
	}
	c, err := Parse(data, "config.example.yaml", env(vars))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, got, want string
	}{
		{"NUDGE_LISTEN", c.Listen, "0.0.0.0:9000"},
		{"NUDGE_DATA_DIR", c.DataDir, "/var/lib/nudge"},
		{"NUDGE_PUBLIC_URL", c.PublicURL, "https://nudge.shop.example"},
		{"NUDGE_ADMIN_TOKEN", c.Admin.Token, "admin-token-from-env"},
		{"SHOPIFY_WEBHOOK_SECRET", c.Stores[0].WebhookSecret, "shpss_from_env"},
		{"STRIPE_WEBHOOK_SECRET", c.Stripe.WebhookSecret, "whsec_from_env"},
		{"NUDGE_WRITE_KEY", c.Tracking.WriteKey, "write-key-from-env"},
		{"NUDGE_EMAIL_PROVIDER", c.Email.Provider, "mailgun"},
		{"SENDGRID_API_KEY", c.Email.SendGrid.APIKey, "SG.from-env"},
		{"SENDGRID_API_BASE", c.Email.SendGrid.APIBase, "https://api.eu.sendgrid.com"},
		{"SENDGRID_WEBHOOK_PUBLIC_KEY", c.Email.SendGrid.WebhookPublicKey, vars["SENDGRID_WEBHOOK_PUBLIC_KEY"]},
		{"MAILGUN_API_KEY", c.Email.Mailgun.APIKey, "key-from-env"},
		{"MAILGUN_DOMAIN", c.Email.Mailgun.Domain, "mg.shop.example"},
		{"MAILGUN_API_BASE", c.Email.Mailgun.APIBase, "https://api.eu.mailgun.net/v3"},
		{"MAILGUN_WEBHOOK_SIGNING_KEY", c.Email.Mailgun.WebhookSigningKey, "signing-key-from-env"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestDefaultsWhenAbsent(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte("admin: {token: t}\n"), "dir/nudge.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	tests := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, "127.0.0.1:8080"},
		{"data_dir", c.DataDir, "./data"},
		{"public_url", c.PublicURL, "http://127.0.0.1:8080"},
		{"timezone", c.Timezone, "UTC"},
		{"provider", c.Email.Provider, "log"},
		{"sendgrid api_base", c.Email.SendGrid.APIBase, "https://api.sendgrid.com"},
		{"mailgun api_base", c.Email.Mailgun.APIBase, "https://api.mailgun.net/v3"},
		{"require_consent", c.Policies.RequireConsent, true},
		{"cap max", c.Policies.FrequencyCap.Max, 2},
		{"cap per", c.Policies.FrequencyCap.Per.D(), 24 * time.Hour},
		{"quiet hours", c.Policies.QuietHours, QuietHours{}},
		{"attribution", c.Policies.AttributionWindow.D(), 5 * day},
		{"attribute_opens", c.Policies.AttributeOpens, true}, // CONTRACT §2: "after a click/open"
		{"retention", c.Retention.D(), 400 * day},
		{"max_body_bytes", c.MaxBodyBytes, int64(1 << 20)},
		{"rate_per_ip", c.Tracking.RatePerIP, 20.0},
		{"rate_per_key", c.Tracking.RatePerKey, 500.0},
		{"inactive_after", c.Insights.InactiveAfter.D(), 90 * day},
		{"inactive_p_alive", c.Insights.InactivePAlive, 0.3},
		{"replenish_lead", c.Insights.ReplenishLead.D(), 3 * day},
		{"refit_every", c.Insights.RefitEvery.D(), day},
		{"keep_raw", c.Storage.KeepRaw != nil && *c.Storage.KeepRaw, true},
		{"max_batch_delay", c.Storage.MaxBatchDelay.D(), 2 * time.Millisecond},
		{"rules", c.Rules, []string{"rules.d/*.yaml"}},
		{"stores", len(c.Stores), 0},
		{"path", c.Path, "dir/nudge.yaml"},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
}

func TestParseValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		check func(*Config) any
		want  any
	}{
		{"quoted int from env", `max_body_bytes: "${MAX:-2048}"`, nil, func(c *Config) any { return c.MaxBodyBytes }, int64(2048)},
		{"bool from env", `policies: {require_consent: "${RC}"}`, map[string]string{"RC": "false"}, func(c *Config) any { return c.Policies.RequireConsent }, false},
		{"explicit zero cap", `policies: {frequency_cap: {max: 0}}`, nil, func(c *Config) any { return c.Policies.FrequencyCap.Max }, 0},
		{"keep_raw false", `storage: {keep_raw: false}`, nil, func(c *Config) any { return *c.Storage.KeepRaw }, false},
		{"scalar rules", `rules: "r/*.yml"`, nil, func(c *Config) any { return c.Rules }, []string{"r/*.yml"}},
		{"empty rules", `rules: []`, nil, func(c *Config) any { return len(c.Rules) }, 0},
		{"null keeps default", "retention:\n", nil, func(c *Config) any { return c.Retention.String() }, "400d"},
		{"week duration", `retention: 2w`, nil, func(c *Config) any { return c.Retention.D() }, 14 * 24 * time.Hour},
		{"currency upper-cased", "stores: [{id: a, platform: woocommerce, webhook_secret: s, currency: eur}]", nil, func(c *Config) any { return c.Stores[0].Currency }, "EUR"},
		{"public_url from listen", `listen: ":9090"`, nil, func(c *Config) any { return c.PublicURL }, "http://127.0.0.1:9090"},
		{"trailing slash trimmed", `public_url: "https://n.example/"`, nil, func(c *Config) any { return c.PublicURL }, "https://n.example"},
		{"dollar escape", `data_dir: "/srv/$$HOME"`, nil, func(c *Config) any { return c.DataDir }, "/srv/$HOME"},
		{"env cannot inject yaml", `data_dir: "${D}"`, map[string]string{"D": "x\nlisten: evil"}, func(c *Config) any { return c.Listen }, "127.0.0.1:8080"},
		{"anchors and aliases", "stores:\n  - &s {id: a, platform: shopify, webhook_secret: s}\nstripe: {store: a}\n", nil, func(c *Config) any { return c.Stripe.Store }, "a"},
		{"yes is true", `tracking: {require_consent: yes}`, nil, func(c *Config) any { return c.Tracking.RequireConsent }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte("admin: {token: t}\n"+tt.yaml+"\n"), "n.yaml", env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.check(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestEmptyFile(t *testing.T) {
	t.Parallel()
	// No admin token nor secret: an empty file is incomplete, but says so
	// with a position-less error rather than failing to parse.
	_, err := Parse(nil, "empty.yaml", nil)
	if err == nil || err.Error() != "empty.yaml: admin.token: required (the bearer token for /admin and /api; it also keys unsubscribe links unless secret is set)" {
		t.Fatalf("Parse(empty) = %v", err)
	}
	c, err := Parse([]byte("secret: 0123456789abcdef\n"), "s.yaml", nil)
	if err != nil {
		t.Fatalf("secret alone should do: %v", err)
	}
	if c.Admin.Token != "" {
		t.Errorf("admin token = %q", c.Admin.Token)
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"A": "alpha", "EMPTY": "", "B": "beta"}
	tests := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha"},
		{in: "x-${A}-${B}-y", want: "x-alpha-beta-y"},
		{in: "${A:-d}", want: "alpha"},
		{in: "${UNSET:-d}", want: "d"},
		{in: "${EMPTY:-d}", want: "d"},
		{in: "${EMPTY}", want: ""},
		{in: "${UNSET:-}", want: ""},
		{in: "${UNSET:-${B}}", want: "beta"},
		{in: "${UNSET:-${NOPE:-deep}}", want: "deep"},
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "pa$s", want: "pa$s"},
		{in: "end$", want: "end$"},
		{in: "${A:-a:-b}", want: "alpha"},
		{in: "${UNSET:-a:-b}", want: "a:-b"},
		{in: "${UNSET}", err: "environment variable UNSET is not set"},
		{in: "${UNSET:-${ALSO}}", err: "environment variable ALSO is not set"},
		{in: "${A", err: `unterminated ${ in "${A"`},
		{in: "${}", err: `invalid environment variable name "" in ${}`},
		{in: "${1A}", err: `invalid environment variable name "1A" in ${1A}`},
		{in: "${A B}", err: `invalid environment variable name "A B" in ${A B}`},
		{in: strings.Repeat("${U:-", 10) + strings.Repeat("}", 10), err: "${...} defaults nested more than 8 deep"},
	}
	for _, tt := range tests {
		got, err := expand(tt.in, env(vars))
		switch {
		case tt.err != "":
			if err == nil || err.Error() != tt.err {
				t.Errorf("expand(%q) error = %v, want %q", tt.in, err, tt.err)
			}
		case err != nil:
			t.Errorf("expand(%q): %v", tt.in, err)
		case got != tt.want:
			t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// secretValues are the secret values of exampleEnv that must never appear
// in printed configuration.
var secretValues = []string{"admin-token-from-env", "shpss_from_env", "whsec_from_env", "write-key-from-env", "SG.from-env", "key-from-env", "signing-key-from-env", "very-secret-token-key", "previous-shop-secret", "previous-stripe"}

func secretConfig(t *testing.T) *Config {
	t.Helper()
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "config.example.yaml", env(exampleEnv))
	if err != nil {
		t.Fatal(err)
	}
	c.Secret = "very-secret-token-key"
	c.Stores[0].PreviousWebhookSecret = "previous-shop-secret"
	c.Stripe.PreviousWebhookSecret = "previous-stripe"
	return c
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c := secretConfig(t)
	r := c.Redacted()
	for name, v := range map[string]string{
		"admin.token": r.Admin.Token, "secret": r.Secret, "webhook_secret": r.Stores[0].WebhookSecret,
		"previous_webhook_secret": r.Stores[0].PreviousWebhookSecret, "stripe": r.Stripe.WebhookSecret,
		"stripe previous": r.Stripe.PreviousWebhookSecret, "write_key": r.Tracking.WriteKey,
		"sendgrid": r.Email.SendGrid.APIKey, "mailgun": r.Email.Mailgun.APIKey, "signing": r.Email.Mailgun.WebhookSigningKey,
	} {
		if v != "***" {
			t.Errorf("%s = %q, want ***", name, v)
		}
	}
	if c.Stores[0].WebhookSecret != "shpss_from_env" || c.Admin.Token != "admin-token-from-env" {
		t.Error("Redacted changed the original")
	}
	if r.Email.Mailgun.Domain != "mg.shop.example" || r.Listen != c.Listen {
		t.Error("Redacted hid a value that is not secret")
	}
	empty := Default()
	empty.Stores[0].PreviousWebhookSecret = ""
	if got := empty.Redacted().Stores[0].PreviousWebhookSecret; got != "" {
		t.Errorf("unset secret redacted to %q, want empty", got)
	}
}

func TestNoSecretsInOutput(t *testing.T) {
	t.Parallel()
	c := secretConfig(t)
	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("config", "config", *c, "ptr", c, "store", c.Stores[0], "sendgrid", c.Email.SendGrid)
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("config", "config", c, "mailgun", c.Email.Mailgun)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	jsStore, _ := json.Marshal(c.Stores)
	jsEmail, _ := json.Marshal(c.Email)
	outputs := map[string]string{
		"%v":             fmt.Sprintf("%v", *c),
		"%+v":            fmt.Sprintf("%+v", *c),
		"%#v":            fmt.Sprintf("%#v", *c),
		"%v ptr":         fmt.Sprintf("%v", c),
		"%+v ptr":        fmt.Sprintf("%+v", c),
		"%q":             fmt.Sprintf("%q", *c),
		"%+v stores":     fmt.Sprintf("%+v", c.Stores),
		"%#v stores":     fmt.Sprintf("%#v", c.Stores),
		"%+v email":      fmt.Sprintf("%+v", c.Email),
		"%#v email":      fmt.Sprintf("%#v", c.Email),
		"%+v admin":      fmt.Sprintf("%+v", c.Admin),
		"%+v stripe":     fmt.Sprintf("%+v", c.Stripe),
		"%+v tracking":   fmt.Sprintf("%+v", c.Tracking),
		"json":           string(js),
		"json stores":    string(jsStore),
		"json email":     string(jsEmail),
		"slog json":      jsonLog.String(),
		"slog text":      textLog.String(),
		"error wrapping": fmt.Errorf("bad config %v", c).Error(),
	}
	for name, out := range outputs {
		for _, s := range secretValues {
			if strings.Contains(out, s) {
				t.Errorf("%s leaks %q: %s", name, s, out)
			}
		}
		if !strings.Contains(out, "***") {
			t.Errorf("%s shows no redaction mark: %s", name, out)
		}
	}
	// Non-secrets stay visible.
	if s := fmt.Sprintf("%+v", *c); !strings.Contains(s, "mg.shop.example") || !strings.Contains(s, "0.0.0.0:9000") {
		t.Errorf("%%+v hides plain values: %s", s)
	}
}

func TestSecretForTokens(t *testing.T) {
	t.Parallel()
	a := &Config{Admin: Admin{Token: "tok"}}
	b := &Config{Admin: Admin{Token: "tok"}, DataDir: "/elsewhere"}
	other := &Config{Admin: Admin{Token: "other"}}
	if !bytes.Equal(a.SecretForTokens(), b.SecretForTokens()) {
		t.Error("derived secret is not stable for the same admin token")
	}
	if bytes.Equal(a.SecretForTokens(), other.SecretForTokens()) {
		t.Error("derived secret does not depend on the admin token")
	}
	if bytes.Contains(a.SecretForTokens(), []byte("tok")) || len(a.SecretForTokens()) != 32 {
		t.Errorf("derived secret = %x, want a 32-byte HMAC", a.SecretForTokens())
	}
	s := &Config{Admin: Admin{Token: "tok"}, Secret: "explicit-secret-value"}
	if string(s.SecretForTokens()) != "explicit-secret-value" {
		t.Errorf("explicit secret not used: %q", s.SecretForTokens())
	}
}

func TestRuleFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"rules.d/a.yaml", "rules.d/b.yaml", "rules.d/a_test.yaml", "extra/c.yaml", "rules.d/sub.yaml/x"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("id: x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "nudge.yaml")
	tests := []struct {
		name  string
		rules []string
		want  []string
		err   bool
	}{
		{"default glob", []string{"rules.d/*.yaml"}, []string{"rules.d/a.yaml", "rules.d/b.yaml"}, false},
		{"dedupe and sort", []string{"rules.d/b.yaml", "rules.d/*.yaml", "extra/*.yaml", "rules.d/a.yaml"}, []string{"extra/c.yaml", "rules.d/a.yaml", "rules.d/b.yaml"}, false},
		{"test file named directly", []string{"rules.d/a_test.yaml"}, nil, false},
		{"glob matching nothing", []string{"none/*.yaml"}, nil, false},
		{"absolute", []string{filepath.Join(dir, "extra", "*.yaml")}, []string{"extra/c.yaml"}, false},
		{"missing plain path", []string{"rules.d/typo.yaml"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{Path: cfgPath, Rules: tt.rules}
			got, err := c.RuleFiles()
			if tt.err {
				if !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("RuleFiles() error = %v, want not-exist", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, filepath.Join(dir, w))
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("RuleFiles() = %v, want %v", got, want)
			}
		})
	}
}

func TestStoreLookups(t *testing.T) {
	t.Parallel()
	c := Default()
	if s, ok := c.StoreByID("main"); !ok || s.Platform != "shopify" {
		t.Errorf("StoreByID(main) = %v, %v", s, ok)
	}
	if _, ok := c.StoreByID("nope"); ok {
		t.Error("StoreByID(nope) found a store")
	}
	if s, ok := c.StripeStore(); !ok || s.ID != "main" {
		t.Errorf("StripeStore() = %v, %v, want the first store", s, ok)
	}
	c.Stores = append(c.Stores, Store{ID: "eu"})
	c.Stripe.Store = "eu"
	if s, ok := c.StripeStore(); !ok || s.ID != "eu" {
		t.Errorf("StripeStore() = %v, %v, want eu", s, ok)
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		e    Error
		want string
	}{
		{Error{"nudge.yaml", 12, 20, "m"}, "nudge.yaml:12:20: m"},
		{Error{"nudge.yaml", 3, 0, "m"}, "nudge.yaml:3: m"},
		{Error{"nudge.yaml", 0, 0, "m"}, "nudge.yaml: m"},
		{Error{"", 0, 0, "m"}, "m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
