package config

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	storeIDPattern  = regexp.MustCompile(`^[a-z0-9-]+$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	clockPattern    = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

// Accepted enumerations.
var (
	providers = []string{"log", "sendgrid", "mailgun"}
	platforms = []string{"shopify", "woocommerce"}
)

// minSecretLen is the shortest explicit token secret accepted: 16 bytes
// of entropy at best, and anything shorter is guessable.
const minSecretLen = 16

// normalize tidies values whose spelling does not matter, so the rest of
// nudge can compare and concatenate them without care: currencies in
// upper case, base URLs without a trailing slash, and a public_url derived
// from listen when absent.
func normalize(c *Config, d *decoder) {
	if _, set := d.nodes["public_url"]; !set && c.PublicURL == "" {
		host, port, err := net.SplitHostPort(c.Listen)
		if err == nil {
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			c.PublicURL = "http://" + net.JoinHostPort(host, port)
		}
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	c.Email.SendGrid.APIBase = strings.TrimRight(c.Email.SendGrid.APIBase, "/")
	c.Email.Mailgun.APIBase = strings.TrimRight(c.Email.Mailgun.APIBase, "/")
	for i := range c.Stores {
		c.Stores[i].Currency = strings.ToUpper(strings.TrimSpace(c.Stores[i].Currency))
		c.Stores[i].URL = strings.TrimRight(c.Stores[i].URL, "/")
	}
	if c.Timezone == "" {
		c.Timezone = DefaultTimezone
	}
	if c.Email.Provider == "" {
		c.Email.Provider = DefaultProvider
	}
}

// checker collects validation errors at the position of the key path they
// concern.
type checker struct {
	d    *decoder
	errs ErrorList
}

// at returns the position of the first of paths present in the file,
// falling back to the nearest enclosing key that is.
func (k *checker) at(paths ...string) pos {
	for _, p := range paths {
		if n, ok := k.d.nodes[p]; ok {
			return pos{n.Line, n.Column}
		}
	}
	for _, p := range paths {
		for p != "" {
			p = parentPath(p)
			if n, ok := k.d.nodes["key:"+p]; ok {
				return pos{n.Line, n.Column}
			}
		}
	}
	if n, ok := k.d.nodes[""]; ok {
		// A required top-level key is missing: point at the document.
		return pos{n.Line, n.Column}
	}
	return pos{}
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// reported says whether path or a key enclosing it already has a decode
// error, so validating its leftover default would only repeat it.
func (k *checker) reported(path string) bool {
	if k.d.failed[""] {
		return true
	}
	for p := path; p != ""; p = parentPath(p) {
		if k.d.failed[p] {
			return true
		}
	}
	return false
}

func (k *checker) fail(path string, format string, args ...any) {
	if k.reported(path) {
		return
	}
	k.errs = append(k.errs, errf(k.d.file, k.at(path), "%s: %s", path, fmt.Sprintf(format, args...)))
}

// failAt reports a problem about path at the position of another key,
// for requirements whose missing key has no position of its own.
func (k *checker) failAt(path string, where []string, format string, args ...any) {
	if k.reported(path) {
		return
	}
	k.errs = append(k.errs, errf(k.d.file, k.at(where...), "%s: %s", path, fmt.Sprintf(format, args...)))
}

func validate(c *Config, d *decoder) ErrorList {
	k := &checker{d: d}
	k.listen("listen", c.Listen)
	if strings.TrimSpace(c.DataDir) == "" {
		k.fail("data_dir", "must not be empty")
	}
	k.httpURL("public_url", c.PublicURL, true)
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		k.fail("timezone", "unknown time zone %q (use an IANA name such as Europe/Berlin)", c.Timezone)
	}
	if c.Admin.Token == "" && c.Secret == "" {
		k.failAt("admin.token", []string{"admin", "secret"}, "required (the bearer token for /admin and /api; it also keys unsubscribe links unless secret is set)")
	}
	if c.Secret != "" && len(c.Secret) < minSecretLen {
		k.fail("secret", "too short: use at least %d characters", minSecretLen)
	}
	if c.Retention <= 0 {
		k.fail("retention", "must be positive")
	}
	if c.MaxBodyBytes <= 0 {
		k.fail("max_body_bytes", "must be positive")
	}
	for i, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			k.fail(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not an IP address or CIDR range (e.g. 10.0.0.0/8)", p)
		}
	}
	k.stores(c)
	k.tracking(c)
	k.email(c)
	k.policies(c)
	for i, r := range c.Rules {
		p := fmt.Sprintf("rules[%d]", i)
		if strings.TrimSpace(r) == "" {
			k.fail(p, "empty rule glob")
		} else if _, err := filepath.Match(r, ""); err != nil {
			k.fail(p, "invalid glob %q: %v", r, err)
		}
	}
	if c.Insights.InactiveAfter <= 0 {
		k.fail("insights.inactive_after", "must be positive")
	}
	if p := c.Insights.InactivePAlive; p < 0 || p > 1 {
		k.fail("insights.inactive_p_alive", "must be between 0 and 1, got %v", p)
	}
	if c.Insights.ReplenishLead < 0 {
		k.fail("insights.replenish_lead", "must not be negative")
	}
	if c.Insights.RefitEvery <= 0 {
		k.fail("insights.refit_every", "must be positive")
	}
	if c.Storage.MaxBatchDelay > Duration(time.Second) {
		k.fail("storage.max_batch_delay", "%s is too long: every webhook answer waits up to this long (use a few milliseconds)", c.Storage.MaxBatchDelay)
	}
	return k.errs
}

func (k *checker) listen(path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		k.fail(path, "%q is not host:port (e.g. 127.0.0.1:8080 or :8080)", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		k.fail(path, "%q: port must be a number from 0 to 65535", addr)
	}
	if strings.ContainsAny(host, " /") {
		k.fail(path, "%q: invalid host", addr)
	}
}

// httpURL checks an absolute http(s) URL; optional URLs may be empty.
func (k *checker) httpURL(path, raw string, required bool) {
	if raw == "" {
		if required {
			k.fail(path, "required")
		}
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		k.fail(path, "%q is not an absolute http(s) URL", raw)
		return
	}
	if u.RawQuery != "" || u.Fragment != "" {
		k.fail(path, "%q must not have a query or fragment", raw)
	}
}

func (k *checker) stores(c *Config) {
	first := map[string]int{}
	for i, s := range c.Stores {
		p := fmt.Sprintf("stores[%d]", i)
		switch {
		case s.ID == "":
			k.failAt(p+".id", []string{p}, "required")
		case !storeIDPattern.MatchString(s.ID):
			k.fail(p+".id", "%q must match [a-z0-9-]+ (it appears in the webhook URL)", s.ID)
		default:
			if j, dup := first[s.ID]; dup {
				k.fail(p+".id", "duplicate store id %q (also stores[%d])", s.ID, j)
			} else {
				first[s.ID] = i
			}
		}
		if s.Platform == "" {
			k.failAt(p+".platform", []string{p}, "required (%s)", strings.Join(platforms, " | "))
		} else if !oneOf(s.Platform, platforms) {
			k.fail(p+".platform", "%q is not one of %s", s.Platform, strings.Join(platforms, " | "))
		}
		k.httpURL(p+".url", s.URL, false)
		if s.Currency != "" && !currencyPattern.MatchString(s.Currency) {
			k.fail(p+".currency", "%q is not an ISO 4217 code such as USD", s.Currency)
		}
		if s.WebhookSecret == "" {
			k.failAt(p+".webhook_secret", []string{p + ".webhook_secret", p}, "required: webhooks cannot be verified without it")
		}
	}
	if c.Stripe.Store != "" {
		if _, ok := first[c.Stripe.Store]; !ok {
			k.fail("stripe.store", "no store with id %q", c.Stripe.Store)
		}
	}
}

func (k *checker) tracking(c *Config) {
	for i, o := range c.Tracking.AllowedOrigins {
		p := fmt.Sprintf("tracking.allowed_origins[%d]", i)
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			k.fail(p, "%q is not an origin such as https://example.com (or *)", o)
		}
	}
	if c.Tracking.RatePerIP < 0 {
		k.fail("tracking.rate_per_ip", "must not be negative (0 means unlimited)")
	}
	if c.Tracking.RatePerKey < 0 {
		k.fail("tracking.rate_per_key", "must not be negative (0 means unlimited)")
	}
}

func (k *checker) email(c *Config) {
	e := c.Email
	if !oneOf(e.Provider, providers) {
		k.fail("email.provider", "%q is not one of %s", e.Provider, strings.Join(providers, " | "))
	}
	if e.From.Email == "" {
		if e.Provider != "log" {
			k.failAt("email.from.email", []string{"email.from", "email.provider"}, "required to send through %s", e.Provider)
		}
	} else if !validAddress(e.From.Email) {
		k.fail("email.from.email", "%q is not an email address", e.From.Email)
	}
	if e.ReplyTo.Email != "" && !validAddress(e.ReplyTo.Email) {
		k.fail("email.reply_to.email", "%q is not an email address", e.ReplyTo.Email)
	}
	k.httpURL("email.sendgrid.api_base", e.SendGrid.APIBase, true)
	k.httpURL("email.mailgun.api_base", e.Mailgun.APIBase, true)
	if b := e.Mailgun.APIBase; b != "" && !strings.HasSuffix(b, "/v3") {
		k.fail("email.mailgun.api_base", "%q must end in /v3 (e.g. https://api.eu.mailgun.net/v3)", b)
	}
	if e.SendGrid.UnsubscribeGroup < 0 {
		k.fail("email.sendgrid.unsubscribe_group", "must not be negative (0 means none)")
	}
	if key := e.SendGrid.WebhookPublicKey; key != "" {
		if err := checkECDSAKey(key); err != nil {
			k.fail("email.sendgrid.webhook_public_key", "%v", err)
		}
	}
	switch e.Provider {
	case "sendgrid":
		if e.SendGrid.APIKey == "" {
			k.failAt("email.sendgrid.api_key", []string{"email.sendgrid.api_key", "email.sendgrid", "email.provider"}, "required when email.provider is sendgrid")
		}
	case "mailgun":
		if e.Mailgun.APIKey == "" {
			k.failAt("email.mailgun.api_key", []string{"email.mailgun.api_key", "email.mailgun", "email.provider"}, "required when email.provider is mailgun")
		}
		if e.Mailgun.Domain == "" {
			k.failAt("email.mailgun.domain", []string{"email.mailgun.domain", "email.mailgun", "email.provider"}, "required when email.provider is mailgun")
		}
	}
}

func validAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s
}

// checkECDSAKey checks SendGrid's verification key now, not at the first
// signed event: base64 of a DER PKIX ECDSA public key.
func checkECDSAKey(s string) error {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("not base64: %v", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return fmt.Errorf("not a DER-encoded public key (copy it from SendGrid's Mail Settings > Signed Event Webhook)")
	}
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		return fmt.Errorf("not an ECDSA public key (%T)", pub)
	}
	return nil
}

func (k *checker) policies(c *Config) {
	p := c.Policies
	if p.FrequencyCap.Max < 0 {
		k.fail("policies.frequency_cap.max", "must not be negative (0 means no cap)")
	}
	if p.FrequencyCap.Max > 0 && p.FrequencyCap.Per <= 0 {
		k.failAt("policies.frequency_cap.per", []string{"policies.frequency_cap.per", "policies.frequency_cap"}, "must be positive")
	}
	q := p.QuietHours
	for _, f := range []struct{ path, v string }{{"policies.quiet_hours.start", q.Start}, {"policies.quiet_hours.end", q.End}} {
		if f.v != "" && !clockPattern.MatchString(f.v) {
			k.fail(f.path, "%q is not a time of day HH:MM (00:00 to 23:59)", f.v)
		}
	}
	switch {
	case (q.Start == "") != (q.End == ""):
		k.failAt("policies.quiet_hours", []string{"policies.quiet_hours"}, "set both start and end, or neither")
	case q.Start != "" && q.Start == q.End:
		k.fail("policies.quiet_hours", "start and end are equal; remove quiet_hours to allow sends at any hour")
	}
	if p.AttributionWindow <= 0 {
		k.fail("policies.attribution_window", "must be positive")
	}
}

func oneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}
