package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors/shopify"
	"github.com/nudge-email/nudge/storage"
)

// TestUnsubscribeSurvivesRestatedConsent: Shopify repeats a customer's
// stored marketing consent (and the marketing box) in every later checkout
// and order, and nudge never writes its unsubscribes back to Shopify. So
// an old "subscribed" arriving after an unsubscribe must not lift it or
// turn the profile's consent back to granted; only a decision made after
// the unsubscribe may.
func TestUnsubscribeSurvivesRestatedConsent(t *testing.T) {
	t.Parallel()
	const email = "restated@example.com"
	optIn := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) // long before the unsubscribe
	tests := []struct {
		name       string
		topic      string
		accepts    bool      // buyer_accepts_marketing
		consentAt  time.Time // the customer's consent_updated_at; zero: no stored consent in the payload
		wantLifted bool
	}{
		{"checkout restating an old opt-in, box unticked", "checkouts/create", false, optIn, false},
		{"checkout restating an old opt-in, box ticked", "checkouts/create", true, optIn, false},
		{"order restating an old opt-in, box ticked", "orders/create", true, optIn, false},
		{"ticked box with no stored consent (undated)", "orders/create", true, time.Time{}, false},
		{"box ticked at this checkout (Shopify re-dates the consent)", "checkouts/create", true, ingNow.Add(3 * time.Minute), true},
		{"consent update dated after the unsubscribe", "customers_email_marketing_consent/update", false, ingNow.Add(3 * time.Minute), true},
		{"consent update dated before the unsubscribe", "customers_email_marketing_consent/update", false, optIn, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newIngEnv(t)
			ctx := context.Background()
			post := func(topic string, at time.Time, edit func(m map[string]any)) {
				t.Helper()
				e.clock.Set(at)
				b, h, err := shopify.Sample(topic, email, at)
				if err != nil {
					t.Fatal(err)
				}
				if edit != nil {
					var m map[string]any
					if err := json.Unmarshal(b, &m); err != nil {
						t.Fatal(err)
					}
					edit(m)
					if b, err = json.Marshal(m); err != nil {
						t.Fatal(err)
					}
				}
				h.Set(shopify.HeaderHmac, shopify.Sign(ingShopSecret, b))
				if r := e.mustPost(t, "/webhooks/shopify/main", h, b); r.code != http.StatusOK {
					t.Fatalf("%s answered %s", topic, r)
				}
			}
			consent := func(at time.Time) map[string]any {
				return map[string]any{"state": "subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": at.Format(time.RFC3339)}
			}

			// Subscribed in 2024; the first checkout says so.
			post("checkouts/create", ingNow, func(m map[string]any) {
				m["customer"].(map[string]any)["email_marketing_consent"] = consent(optIn)
			})
			// The customer unsubscribes through a nudge link a minute later.
			e.clock.Set(ingNow.Add(time.Minute))
			unsub := behavior.Record{ID: "unsub-1", Kind: behavior.Unsubscribed, Source: "nudge", At: ingNow.Add(time.Minute), Email: email}
			if _, err := e.store.Append(ctx, storage.Ingest{Records: []behavior.Record{unsub}}); err != nil {
				t.Fatal(err)
			}
			if p, err := e.store.ProfileByEmail(ctx, email); err != nil || p.Consent.State != behavior.ConsentDenied {
				t.Fatalf("after the unsubscribe the profile's consent is %+v (%v), want denied", p.Consent, err)
			}

			post(tc.topic, ingNow.Add(5*time.Minute), func(m map[string]any) {
				c := consent(tc.consentAt)
				if tc.consentAt.IsZero() {
					c = nil
				}
				switch {
				case tc.topic == "customers_email_marketing_consent/update":
					m["email_marketing_consent"] = c
				default:
					m["buyer_accepts_marketing"] = tc.accepts
					cust := m["customer"].(map[string]any)
					if c == nil {
						delete(cust, "email_marketing_consent")
					} else {
						cust["email_marketing_consent"] = c
					}
				}
			})

			_, suppressed, err := e.store.Suppressed(ctx, email)
			if err != nil {
				t.Fatal(err)
			}
			p, err := e.store.ProfileByEmail(ctx, email)
			if err != nil {
				t.Fatal(err)
			}
			if suppressed == tc.wantLifted {
				t.Errorf("suppressed = %v, want %v", suppressed, !tc.wantLifted)
			}
			if granted := p.Consent.State == behavior.ConsentGranted; granted != tc.wantLifted && tc.consentAt.Equal(optIn) {
				t.Errorf("an old opt-in restated made the profile's consent %+v", p.Consent)
			}
			if tc.wantLifted && p.Consent.State != behavior.ConsentGranted {
				t.Errorf("a new opt-in left the profile's consent %+v", p.Consent)
			}
		})
	}
}
