package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/nudge-email/nudge/connectors/sendgrid"
	"github.com/nudge-email/nudge/connectors/shopify"
)

// TestExportHoldsRawDeliveries: the export of a person holds the raw
// webhook bodies kept about them (what `nudge forget` erases), and none of
// another person's: a Shopify checkout each, then one SendGrid post with
// both people's events.
func TestExportHoldsRawDeliveries(t *testing.T) {
	t.Parallel()
	e := newIngEnv(t)
	const ann, bob = "ann.export@example.com", "bob.export@example.com"
	checkout := func(email, street string) {
		t.Helper()
		body, h, err := shopify.Sample("checkouts/create", email, ingNow)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		m["billing_address"].(map[string]any)["address1"] = street
		if body, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
		h.Set(shopify.HeaderHmac, shopify.Sign(ingShopSecret, body))
		if r := e.mustPost(t, "/webhooks/shopify/main", h, body); r.code != http.StatusOK || r.answer.Records == 0 {
			t.Fatalf("checkout for %s: %s", email, r)
		}
	}
	checkout(ann, "12 Annex Lane")
	checkout(bob, "7 Bobcat Road")

	ts := strconv.FormatInt(ingNow.Unix(), 10)
	batch := fmt.Appendf(nil, `[{"email":%q,"timestamp":%s,"event":"open","sg_event_id":"ev-ann","useragent":"AnnPhone"},`+
		`{"email":%q,"timestamp":%s,"event":"open","sg_event_id":"ev-bob","useragent":"BobPhone"}]`+"\r\n", ann, ts, bob, ts)
	sig, err := sendgrid.SignWithKey(e.sgKey, batch, ts)
	if err != nil {
		t.Fatal(err)
	}
	h := jsonHeader()
	h.Set(sendgrid.WebhookTimestampHeader, ts)
	h.Set(sendgrid.WebhookSignatureHeader, sig)
	if r := e.mustPost(t, "/webhooks/sendgrid", h, batch); r.code != http.StatusOK || r.answer.Records != 2 {
		t.Fatalf("sendgrid batch: %s", r)
	}

	req, _ := http.NewRequest(http.MethodGet, e.url+"/api/v1/profiles/"+ann+"/export", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var x struct {
		Deliveries []struct {
			ID         string          `json:"id"`
			Source     string          `json:"source"`
			Store      string          `json:"store"`
			Topic      string          `json:"topic"`
			ReceivedAt string          `json:"received_at"`
			Body       json.RawMessage `json:"body"`
		} `json:"deliveries"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&x); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET export: %d %v", resp.StatusCode, err)
	}

	var sawCheckout, sawEvents bool
	for _, d := range x.Deliveries {
		if d.ID == "" || d.ReceivedAt == "" {
			t.Errorf("delivery without id or received_at: %+v", d)
		}
		body := string(d.Body)
		if strings.Contains(body, bob) || strings.Contains(body, "Bobcat") || strings.Contains(body, "BobPhone") {
			t.Errorf("ann's export holds bob's data in %s/%s: %s", d.Source, d.Topic, body)
		}
		switch {
		case d.Source == "shopify" && d.Store == "main" && d.Topic == "checkouts/create":
			var m struct {
				Email   string `json:"email"`
				Billing struct {
					Address1 string `json:"address1"`
				} `json:"billing_address"`
			}
			if err := json.Unmarshal(d.Body, &m); err != nil {
				t.Fatalf("checkout body is not the JSON payload: %v: %s", err, body)
			}
			if m.Email != ann || m.Billing.Address1 != "12 Annex Lane" {
				t.Errorf("checkout body: email %q, billing address1 %q", m.Email, m.Billing.Address1)
			}
			sawCheckout = true
		case d.Source == "sendgrid":
			var evs []struct {
				Email     string `json:"email"`
				UserAgent string `json:"useragent"`
			}
			if err := json.Unmarshal(d.Body, &evs); err != nil {
				t.Fatalf("sendgrid body is not the JSON payload: %v: %s", err, body)
			}
			if len(evs) != 1 || evs[0].Email != ann || evs[0].UserAgent != "AnnPhone" {
				t.Errorf("sendgrid body %s, want ann's event only", body)
			}
			sawEvents = true
		default:
			t.Errorf("unexpected delivery %s/%s/%s: %s", d.Source, d.Store, d.Topic, body)
		}
	}
	if !sawCheckout || !sawEvents {
		t.Errorf("export deliveries: checkout %v, sendgrid events %v; got %d deliveries", sawCheckout, sawEvents, len(x.Deliveries))
	}
}
