// Package load builds correctly signed webhook and tracking requests for
// nudge's load generator and benchmarks, and runs them against a server
// at a fixed concurrency (closed loop) or a fixed rate (open loop),
// measuring throughput and latency.
package load

import (
	"bytes"
	"crypto/ecdsa"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nudge-email/nudge/connectors/sendgrid"
	"github.com/nudge-email/nudge/connectors/shopify"
	"github.com/nudge-email/nudge/connectors/web"
)

// Kinds are the request kinds a Generator can build.
var Kinds = []string{"shopify-order", "shopify-checkout", "sendgrid-batch", "segment-batch"}

// Request is one prepared HTTP request.
type Request struct {
	Path   string
	Body   []byte
	Header http.Header
}

// GenConfig says what to generate.
type GenConfig struct {
	// Kind is one of Kinds.
	Kind string
	// Store is the store id in the Shopify webhook URL (default "main").
	Store string
	// ShopifySecret signs Shopify webhooks.
	ShopifySecret string
	// SendGridKey signs SendGrid event batches.
	SendGridKey *ecdsa.PrivateKey
	// WriteKey authenticates Segment batches.
	WriteKey string
	// Profiles is how many distinct customers the requests spread over;
	// 0 gives every request its own customer.
	Profiles int
	// Batch is the number of events per SendGrid or Segment batch
	// (default 10).
	Batch int
	// ShopifyOrderFile overrides the Shopify order template (default: the
	// shopify connector's copy of Shopify's sample order, about 27 KB).
	ShopifyOrderFile string
	// RunID makes ids unique across runs against one data dir (default:
	// the start time).
	RunID int64
}

// Generator builds request i of a run; every request carries new event
// ids, so each one is a new record rather than a cheap duplicate. It is
// safe for concurrent use.
type Generator struct {
	cfg    GenConfig
	tmpl   *template
	single map[string]any // one event of a batch kind
	seq    atomic.Int64
}

// fixtures are Shopify's own sample order and checkout (PROTOCOLS §1,
// /work/shared/fixtures), byte for byte: the order is the ~27 KB body the
// ingest targets are stated for.
//
//go:embed testdata/shopify_orders_create.json testdata/shopify_checkouts_create.json
var fixtures embed.FS

// Fixture values in Shopify's sample order and checkout that the
// generator replaces per request.
const (
	fixtureOrderID    = "450789469"
	fixtureCustomerID = "207119551"
	fixtureEmail      = "bob.norman@mail.example.com"
	fixtureToken      = "2a1ace52255252df566af0faaedfbfa7" // checkout token
	// The cart and checkout tokens become anonymous identities: left as
	// they are, every request would merge into one ever-growing profile.
	fixtureCartToken     = "68778783ad298f1c80c3bafcddeea02f"
	fixtureCheckoutToken = "bd5a8aa1ecd019dd3520ff791ee3a24c" // in the order
	fixtureOrderToken    = "b1946ac92492d2347c6235b4d2611184"
	fixtureCheckoutID    = "901414060"
	// Event times, replaced by the request's own time (same length, same
	// offset) as a live store sends them. Left fixed, every record would
	// occur at one instant in 2008: the time index would order them by
	// their random ids, and the insights would score decade-old orders.
	fixtureOrderAt        = "2008-01-10T11:00:00-05:00" // order created_at, processed_at
	fixtureOrderUpdatedAt = "2024-04-02T09:04:19-05:00"
	fixtureCheckoutAt     = "2012-10-12T07:05:27-04:00" // checkout created_at, updated_at
)

var (
	zoneEST = time.FixedZone("", -5*3600)
	zoneEDT = time.FixedZone("", -4*3600)
)

// NewGenerator prepares templates for cfg.
func NewGenerator(cfg GenConfig) (*Generator, error) {
	if cfg.Store == "" {
		cfg.Store = "main"
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 10
	}
	if cfg.RunID == 0 {
		cfg.RunID = time.Now().Unix() % 1_000_000
	}
	g := &Generator{cfg: cfg}
	switch cfg.Kind {
	case "shopify-order", "shopify-checkout":
		if cfg.ShopifySecret == "" {
			return nil, fmt.Errorf("load: %s needs the Shopify webhook secret", cfg.Kind)
		}
		raw, err := shopifyFixture(cfg)
		if err != nil {
			return nil, err
		}
		g.tmpl = newTemplate(raw, fixtureOrderID, fixtureCustomerID, fixtureEmail, fixtureToken,
			fixtureCartToken, fixtureCheckoutToken, fixtureOrderToken, fixtureCheckoutID,
			fixtureOrderAt, fixtureOrderUpdatedAt, fixtureCheckoutAt)
	case "sendgrid-batch":
		if cfg.SendGridKey == nil {
			return nil, fmt.Errorf("load: sendgrid-batch needs the SendGrid signing key")
		}
		body, _, err := sendgrid.Sample("open", "x@example.com", time.Now())
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		var evs []map[string]any
		if err := json.Unmarshal(body, &evs); err != nil || len(evs) != 1 {
			return nil, fmt.Errorf("load: sendgrid sample: %v", err)
		}
		g.single = evs[0]
	case "segment-batch":
		if cfg.WriteKey == "" {
			return nil, fmt.Errorf("load: segment-batch needs the tracking write key")
		}
		_, body, _, err := web.Sample("product_viewed", "x@example.com", cfg.WriteKey)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		if err := json.Unmarshal(body, &g.single); err != nil {
			return nil, fmt.Errorf("load: segment sample: %w", err)
		}
	default:
		return nil, fmt.Errorf("load: unknown kind %q (one of %s)", cfg.Kind, strings.Join(Kinds, ", "))
	}
	return g, nil
}

func shopifyFixture(cfg GenConfig) ([]byte, error) {
	if cfg.ShopifyOrderFile != "" && cfg.Kind == "shopify-order" {
		b, err := os.ReadFile(cfg.ShopifyOrderFile)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		return b, nil
	}
	name := "shopify_orders_create.json"
	if cfg.Kind == "shopify-checkout" {
		name = "shopify_checkouts_create.json"
	}
	b, err := fixtures.ReadFile("testdata/" + name)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return b, nil
}

// Next builds the next request of the run.
func (g *Generator) Next() (Request, error) {
	return g.Build(g.seq.Add(1))
}

// customer returns the customer number of request i.
func (g *Generator) customer(i int64) int64 {
	if g.cfg.Profiles > 0 {
		return i % int64(g.cfg.Profiles)
	}
	return i
}

// Email is the address request i is about.
func (g *Generator) Email(i int64) string {
	return fmt.Sprintf("lg%d-%d@example.com", g.cfg.RunID, g.customer(i))
}

// Build builds request i; the same i always gives the same event ids, so
// a caller can replay a request as a duplicate delivery.
func (g *Generator) Build(i int64) (Request, error) {
	now := time.Now().UTC()
	switch g.cfg.Kind {
	case "shopify-order", "shopify-checkout":
		orderID := strconv.FormatInt(g.cfg.RunID*10_000_000_000+i, 10)
		custID := strconv.FormatInt(g.cfg.RunID*10_000_000_000+g.customer(i), 10)
		tok := func(kind int) string { return fmt.Sprintf("%08x%08x%016x", g.cfg.RunID, kind, i) }
		checkoutID := strconv.FormatInt(g.cfg.RunID*10_000_000_000+5_000_000_000+i, 10)
		const stamp = "2006-01-02T15:04:05-07:00"
		body := g.tmpl.fill(orderID, custID, g.Email(i), tok(1), tok(2), tok(3), tok(4), checkoutID,
			now.In(zoneEST).Format(stamp), now.In(zoneEST).Format(stamp), now.In(zoneEDT).Format(stamp))
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		topic := "orders/create"
		if g.cfg.Kind == "shopify-checkout" {
			topic = "checkouts/create"
		}
		h.Set(shopify.HeaderTopic, topic)
		h.Set("X-Shopify-Shop-Domain", "example.myshopify.com")
		h.Set("X-Shopify-API-Version", "2024-07")
		h.Set(shopify.HeaderEventID, fmt.Sprintf("lg-%d-%d", g.cfg.RunID, i))
		h.Set(shopify.HeaderWebhookID, fmt.Sprintf("lgw-%d-%d", g.cfg.RunID, i))
		h.Set(shopify.HeaderTriggeredAt, now.Format(time.RFC3339Nano))
		h.Set(shopify.HeaderHmac, shopify.Sign(g.cfg.ShopifySecret, body))
		return Request{Path: "/webhooks/shopify/" + g.cfg.Store, Body: body, Header: h}, nil
	case "sendgrid-batch":
		evs := make([]map[string]any, g.cfg.Batch)
		for k := range evs {
			ev := make(map[string]any, len(g.single))
			for key, v := range g.single {
				ev[key] = v
			}
			ev["email"] = g.Email(i)
			ev["timestamp"] = now.Unix()
			ev["sg_event_id"] = fmt.Sprintf("lg%d-%d-%d", g.cfg.RunID, i, k)
			ev["sg_message_id"] = fmt.Sprintf("lgm%d-%d.filter", g.cfg.RunID, i)
			evs[k] = ev
		}
		body, err := json.Marshal(evs)
		if err != nil {
			return Request{}, fmt.Errorf("load: %w", err)
		}
		body = append(body, '\r', '\n')
		ts := strconv.FormatInt(now.Unix(), 10)
		sig, err := sendgrid.SignWithKey(g.cfg.SendGridKey, body, ts)
		if err != nil {
			return Request{}, fmt.Errorf("load: %w", err)
		}
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set(sendgrid.WebhookTimestampHeader, ts)
		h.Set(sendgrid.WebhookSignatureHeader, sig)
		return Request{Path: "/webhooks/sendgrid", Body: body, Header: h}, nil
	case "segment-batch":
		msgs := make([]map[string]any, g.cfg.Batch)
		for k := range msgs {
			m := make(map[string]any, len(g.single)+1)
			for key, v := range g.single {
				m[key] = v
			}
			m["type"] = "track"
			m["messageId"] = fmt.Sprintf("lg%d-%d-%d", g.cfg.RunID, i, k)
			m["anonymousId"] = fmt.Sprintf("anon-lg%d-%d", g.cfg.RunID, g.customer(i))
			m["timestamp"] = now.Format(time.RFC3339Nano)
			m["context"] = map[string]any{"traits": map[string]any{"email": g.Email(i)}, "userAgent": "nudge-loadgen/1"}
			msgs[k] = m
		}
		body, err := json.Marshal(map[string]any{"batch": msgs})
		if err != nil {
			return Request{}, fmt.Errorf("load: %w", err)
		}
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("User-Agent", "nudge-loadgen/1")
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(g.cfg.WriteKey+":")))
		return Request{Path: "/v1/batch", Body: body, Header: h}, nil
	}
	return Request{}, fmt.Errorf("load: unknown kind %q", g.cfg.Kind)
}

// template is a body split at the fixture values to replace, so filling
// it is one concatenation rather than a JSON round trip per request.
type template struct {
	parts [][]byte // literal text between slots
	slots []int    // slots[k] = index of the value that follows parts[k]
}

func newTemplate(raw []byte, olds ...string) *template {
	t := &template{}
	rest := raw
	for {
		at, which := -1, -1
		for k, o := range olds {
			if j := bytes.Index(rest, []byte(o)); j >= 0 && (at < 0 || j < at) {
				at, which = j, k
			}
		}
		if at < 0 {
			t.parts = append(t.parts, rest)
			return t
		}
		t.parts = append(t.parts, rest[:at])
		t.slots = append(t.slots, which)
		rest = rest[at+len(olds[which]):]
	}
}

func (t *template) fill(values ...string) []byte {
	n := 0
	for _, p := range t.parts {
		n += len(p)
	}
	out := make([]byte, 0, n+len(t.slots)*32)
	for k, p := range t.parts {
		out = append(out, p...)
		if k < len(t.slots) {
			out = append(out, values[t.slots[k]]...)
		}
	}
	return out
}
