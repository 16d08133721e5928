package load

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/connectors/sendgrid"
	"github.com/nudge-email/nudge/connectors/shopify"
	"github.com/nudge-email/nudge/connectors/web"
)

// TestGeneratedRequestsVerify checks that every kind of request the load
// generator builds passes the real receiver's signature check and
// normalizes into new records with distinct ids, so a load run measures
// storing rather than rejecting or deduplicating.
func TestGeneratedRequestsVerify(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sendgrid.PublicKeyBase64(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := sendgrid.NewReceiver(sendgrid.ReceiverConfig{PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	shop := shopify.New(shopify.Config{StoreID: "main", Secret: "s3cret", Currency: "USD"})
	cases := []struct {
		kind     string
		path     string
		minBytes int
		verify   func(t *testing.T, r Request) []string // record ids
	}{
		{"shopify-order", "/webhooks/shopify/main", 26_000, func(t *testing.T, r Request) []string { return shopifyIDs(t, shop, r) }},
		{"shopify-checkout", "/webhooks/shopify/main", 6_000, func(t *testing.T, r Request) []string { return shopifyIDs(t, shop, r) }},
		{"sendgrid-batch", "/webhooks/sendgrid", 1_000, func(t *testing.T, r Request) []string {
			if err := sg.Verify(r.Header, r.Body, time.Now()); err != nil {
				t.Fatalf("verify: %v", err)
			}
			recs, err := sg.Normalize(r.Header, r.Body)
			if err != nil {
				t.Fatalf("normalize: %v", err)
			}
			var ids []string
			for _, rec := range recs {
				ids = append(ids, rec.ID)
			}
			return ids
		}},
		{"segment-batch", "/v1/batch", 1_000, func(t *testing.T, r Request) []string {
			if got := r.Header.Get("Authorization"); got == "" {
				t.Error("no write key")
			}
			_, msgs, rejected, err := web.ParseBatch(r.Body, web.MaxBatchBytes)
			if err != nil || len(rejected) > 0 {
				t.Fatalf("parse batch: %v %v", err, rejected)
			}
			var ids []string
			for _, m := range msgs {
				ids = append(ids, string(m.MessageID))
			}
			return ids
		}},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			g, err := NewGenerator(GenConfig{Kind: c.kind, ShopifySecret: "s3cret", SendGridKey: key, WriteKey: "wk", Batch: 5})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for range 3 {
				r, err := g.Next()
				if err != nil {
					t.Fatal(err)
				}
				if r.Path != c.path {
					t.Errorf("path %q, want %q", r.Path, c.path)
				}
				if len(r.Body) < c.minBytes {
					t.Errorf("body of %d bytes, want at least %d", len(r.Body), c.minBytes)
				}
				if !json.Valid(r.Body) {
					t.Fatalf("body is not JSON")
				}
				ids := c.verify(t, r)
				if len(ids) == 0 {
					t.Fatal("no records")
				}
				for _, id := range ids {
					if seen[id] {
						t.Errorf("record id %s repeats across requests: the load would be deduplicated", id)
					}
					seen[id] = true
				}
			}
		})
	}
}

func shopifyIDs(t *testing.T, r *shopify.Receiver, req Request) []string {
	t.Helper()
	if err := r.Verify(req.Header, req.Body, time.Now()); err != nil {
		t.Fatalf("verify: %v", err)
	}
	recs, err := r.Normalize(req.Header, req.Body)
	if err != nil {
		t.Fatalf("normalize: %v", err)
	}
	var ids []string
	for _, rec := range recs {
		if rec.AnonymousID != "" && strings.Contains(rec.AnonymousID, "68778783ad298f1c80c3bafcddeea02f") {
			t.Errorf("record %s keeps the fixture's cart token: every request would join one profile", rec.ID)
		}
		if rec.Email == "" || rec.Email == "bob.norman@mail.example.com" {
			t.Errorf("record %s is not about the generated customer: %q", rec.ID, rec.Email)
		}
		// A live store's event happened moments before its webhook; the
		// fixture's own 2008/2012 times would put every record at one
		// instant in the past.
		if age := time.Since(rec.At); age < -time.Minute || age > time.Minute {
			t.Errorf("record %s occurred at %s, not at the request's time", rec.ID, rec.At)
		}
		ids = append(ids, rec.ID)
	}
	return ids
}
