package storage

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

func TestExportDeliveries(t *testing.T) {
	t.Parallel()
	const ann, bob = "ann@example.com", "bob@example.com"
	db, _ := openTestDB(t, Options{KeepRaw: true})
	ctx := context.Background()
	at := t0.Add(time.Hour) // after the prune cutoff below, so records stay
	put := func(id string, recv time.Duration, body string, recs ...behavior.Record) {
		t.Helper()
		d := &Delivery{ID: id, Source: "shopify", Store: "main", Topic: "checkouts/create", ReceivedAt: t0.Add(recv), Body: []byte(body)}
		if _, err := db.Append(ctx, Ingest{Delivery: d, Records: recs}); err != nil {
			t.Fatal(err)
		}
	}
	annBody := `{"email":"Ann@Example.com","billing_address":{"address1":"12 Annex Lane","phone":"+1 555 0100"}}`
	put("del-ann", 3*time.Minute, annBody, rec("ann-checkout", behavior.CheckoutStarted, at, ann))
	put("del-bob", 2*time.Minute, `{"email":"bob@example.com","billing_address":{"address1":"7 Bobcat Road"}}`,
		rec("bob-checkout", behavior.CheckoutStarted, at, bob))
	// A SendGrid events post: one request, both people's events.
	put("del-batch", time.Minute, `[{"email":"ann@example.com","event":"open","useragent":"AnnPhone"},`+
		`{"email":"bob@example.com","event":"open","useragent":"BobPhone"}]`+"\r\n",
		rec("ann-open", behavior.EmailOpened, at, ann), rec("bob-open", behavior.EmailOpened, at, bob))
	// An ignored topic about Ann: stored without records.
	put("del-orphan", 4*time.Minute, `{"customer":{"email":"ANN@example.com","note":"orphan for Ann"}}`)
	// Not Ann's: a longer address containing hers, and Bob's order that
	// names her address (Forget erases both with her).
	put("del-joann", 5*time.Minute, `{"customer":{"email":"joann@example.com","note":"Joann's"}}`)
	put("del-gift", 6*time.Minute, `{"email":"bob@example.com","note":"gift for ann@example.com","billing_address":{"address1":"7 Bobcat Road"}}`,
		rec("bob-gift", behavior.OrderPlaced, at, bob))
	// Retention prunes this one's body; its record stays.
	put("del-pruned", -time.Hour, `{"email":"ann@example.com","note":"pruned"}`, rec("ann-old", behavior.CheckoutStarted, at, ann))
	if _, err := db.Prune(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Record(ctx, "ann-old"); err != nil {
		t.Fatalf("record of the pruned delivery: %v", err)
	}
	if _, err := db.Delivery(ctx, "del-pruned"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pruned delivery: %v", err)
	}

	pid := func(email string) string {
		p, err := db.ProfileByEmail(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	bodies := func(email string) map[string]string {
		t.Helper()
		ds, err := db.ExportDeliveries(ctx, pid(email))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		var order []string
		for _, d := range ds {
			out[d.ID] = string(d.Body)
			order = append(order, d.ID)
			if d.Source != "shopify" || d.Store != "main" || d.Topic != "checkouts/create" || d.ReceivedAt.IsZero() {
				t.Errorf("%s: delivery %s header %+v", email, d.ID, d)
			}
		}
		if !slices.IsSortedFunc(ds, func(a, b Delivery) int { return a.ReceivedAt.Compare(b.ReceivedAt) }) {
			t.Errorf("%s: deliveries not in receipt order: %v", email, order)
		}
		return out
	}

	got := bodies(ann)
	want := map[string]string{
		"del-ann":    annBody,
		"del-batch":  `[{"email":"ann@example.com","event":"open","useragent":"AnnPhone"}]`,
		"del-orphan": `{"customer":{"email":"ANN@example.com","note":"orphan for Ann"}}`,
	}
	for id, body := range want {
		if got[id] != body {
			t.Errorf("ann: delivery %s body %q, want %q", id, got[id], body)
		}
	}
	for id, body := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("ann: exported delivery %s (%s)", id, body)
		}
		for _, other := range []string{"bob", "Bob", "joann"} {
			if strings.Contains(body, other) {
				t.Errorf("ann: delivery %s discloses %q: %s", id, other, body)
			}
		}
	}

	got = bodies(bob)
	if b := got["del-batch"]; b != `[{"email":"bob@example.com","event":"open","useragent":"BobPhone"}]` {
		t.Errorf("bob: batch body %q", b)
	}
	if _, ok := got["del-gift"]; !ok {
		t.Errorf("bob: his order is not exported: %v", got)
	}
	if len(got) != 3 {
		t.Errorf("bob: exported %v, want del-bob, del-batch, del-gift", got)
	}

	// Everything exported is what Forget erases.
	annID := pid(ann)
	ds, err := db.ExportDeliveries(ctx, annID)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Forget(ctx, annID); err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if _, err := db.Delivery(ctx, d.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("delivery %s exported but not forgotten: %v", d.ID, err)
		}
	}
	if _, err := db.ExportDeliveries(ctx, annID); !errors.Is(err, ErrNotFound) {
		t.Errorf("export of a forgotten profile: %v", err)
	}
}

func TestExportDeliveriesWithoutRaw(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	d := &Delivery{ID: "d", Source: "shopify", Body: []byte(`{"email":"ann@example.com"}`)}
	res, err := db.Append(ctx, Ingest{Delivery: d, Records: []behavior.Record{rec("r", behavior.CheckoutStarted, t0, "ann@example.com")}})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := db.ExportDeliveries(ctx, res.Profiles["r"])
	if err != nil || len(ds) != 0 {
		t.Errorf("ExportDeliveries without raw deliveries kept = %v, %v", ds, err)
	}
}

func TestTextMentions(t *testing.T) {
	t.Parallel()
	emails := []string{"ann@x.com"}
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"ann@x.com", true},
		{"ANN@X.COM", true},
		{"Ann <ann@x.com>", true},
		{"mailto:ann@x.com", true},
		{"write to ann@x.com.", true},
		{"joann@x.com", false},
		{"ann.b+ann@x.com", false},
		{"b.ann@x.com", false},
		{"ann@x.com.au", false},
		{"ann@x.community", false},
		{"ann@x.co", false},
		{"joann@x.com, ann@x.com", true},
		{"", false},
	} {
		if got := textMentions(tc.s, emails); got != tc.want {
			t.Errorf("textMentions(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestExportBody(t *testing.T) {
	t.Parallel()
	if b, ok := ExportBody([]byte(`{"a":1}`)).(json.RawMessage); !ok || string(b) != `{"a":1}` {
		t.Errorf("JSON body: %#v", ExportBody([]byte(`{"a":1}`)))
	}
	if s, ok := ExportBody([]byte("webhook_id=3")).(string); !ok || s != "webhook_id=3" {
		t.Errorf("form body: %#v", ExportBody([]byte("webhook_id=3")))
	}
}
