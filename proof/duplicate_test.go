package proof

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors/mailgun"
	"github.com/nudge-email/nudge/connectors/sendgrid"
	"github.com/nudge-email/nudge/connectors/stripe"
	"github.com/nudge-email/nudge/connectors/web"
	"github.com/nudge-email/nudge/connectors/woocommerce"
	"github.com/nudge-email/nudge/storage"
)

// delivery is one signed request, replayable byte for byte.
type delivery struct {
	name string
	path string
	body []byte
	h    http.Header
}

// espKeys are the SendGrid and Mailgun webhook keys both instances of a
// comparison share.
type espKeys struct {
	sg    *ecdsa.PrivateKey
	sgPub string
	mg    string
}

func newESPKeys(t *testing.T) espKeys {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sendgrid.PublicKeyBase64(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return espKeys{sg: k, sgPub: pub, mg: "key-proof-mailgun-signing-0123456789"}
}

// connectorDeliveries builds every sample topic or event type of every
// connector for two people, one second apart, so that ordering matters
// (consent, suppressions, last-seen) and duplicates are exact copies.
func connectorDeliveries(t *testing.T, keys espKeys) map[string][]delivery {
	t.Helper()
	emails := []string{"dup-ann@example.com", "dup-bo@example.com"}
	base := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	out := map[string][]delivery{}
	i := 0
	for _, topic := range shopifyTopics() {
		for _, e := range emails {
			body, h := shopifyDelivery(t, topic, e, at(i))
			out["shopify"] = append(out["shopify"], delivery{"shopify " + topic + " " + e, "/webhooks/shopify/main", body, h})
			i++
		}
	}
	for _, topic := range woocommerce.SampleTopics() {
		for _, e := range emails {
			body, h, err := woocommerce.Sample(topic, e, at(i))
			if err != nil {
				t.Fatal(err)
			}
			h.Set("X-WC-Webhook-Signature", woocommerce.Sign(testSecret, body))
			out["woocommerce"] = append(out["woocommerce"], delivery{"woocommerce " + topic + " " + e, "/webhooks/woocommerce/woo", body, h})
			i++
		}
	}
	for _, typ := range stripe.SampleTypes() {
		for _, e := range emails {
			now := time.Now()
			body, h, err := stripe.Sample(typ, e, at(i))
			if err != nil {
				t.Fatal(err)
			}
			h.Set(stripe.SignatureHeader, stripe.Sign(testStripe, body, now))
			out["stripe"] = append(out["stripe"], delivery{"stripe " + typ + " " + e, "/webhooks/stripe", body, h})
			i++
		}
	}
	for _, ev := range sendgrid.SampleEventTypes() {
		for _, e := range emails {
			body, h, err := sendgrid.Sample(ev, e, at(i))
			if err != nil {
				t.Fatal(err)
			}
			sig, err := sendgrid.SignWithKey(keys.sg, body, h.Get(sendgrid.WebhookTimestampHeader))
			if err != nil {
				t.Fatal(err)
			}
			h.Set(sendgrid.WebhookSignatureHeader, sig)
			out["sendgrid"] = append(out["sendgrid"], delivery{"sendgrid " + ev + " " + e, "/webhooks/sendgrid", body, h})
			i++
		}
	}
	for _, ev := range mailgun.SampleEventTypes() {
		for _, e := range emails {
			body, h, err := mailgun.Sample(ev, e, at(i))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = mailgun.SignBody(keys.mg, body, time.Now()); err != nil {
				t.Fatal(err)
			}
			out["mailgun"] = append(out["mailgun"], delivery{"mailgun " + ev + " " + e, "/webhooks/mailgun", body, h})
			i++
		}
	}
	for _, ev := range web.SampleEvents() {
		for _, e := range emails {
			path, body, h, err := web.Sample(ev, e, testWriteKey)
			if err != nil {
				t.Fatal(err)
			}
			out["web"] = append(out["web"], delivery{"web " + ev + " " + e, path, body, h})
			i++
		}
	}
	return out
}

// shopifyTopics are the Shopify sample topics, with orders after the
// checkouts they complete so the in-order run is the natural one.
func shopifyTopics() []string {
	return []string{
		"customers/create", "carts/create", "checkouts/create", "checkouts/update", "orders/create", "orders/paid",
		"orders/fulfilled", "refunds/create", "customers/update", "customers_email_marketing_consent/update",
		"products/update", "inventory_levels/update", "orders/cancelled",
	}
}

// stateView is the comparable final state of a store: everything a
// delivery can change, minus ids and clocks that depend on arrival
// (profile ids, received-at, updated-at).
type stateView struct {
	Stats        storage.Stats
	Records      []string
	Profiles     []string
	Suppressions []string
}

func viewState(t *testing.T, db *storage.DB, emails []string) stateView {
	t.Helper()
	ctx := context.Background()
	var v stateView
	st, err := db.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.FileBytes = 0
	v.Stats = st
	err = db.ScanRecords(ctx, time.Time{}, time.Time{}, func(r behavior.Record) error {
		r.ReceivedAt = time.Time{}
		b, _ := json.Marshal(r)
		v.Records = append(v.Records, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(v.Records)
	err = db.ScanProfiles(ctx, func(p storage.Profile) error {
		p.ID, p.UpdatedAt, p.ScoredAt, p.Scores, p.Segment = "", time.Time{}, time.Time{}, nil, ""
		slices.SortFunc(p.Identities, func(a, b behavior.Identity) int { return strings.Compare(a.Type+a.Value, b.Type+b.Value) })
		b, _ := json.Marshal(p)
		v.Profiles = append(v.Profiles, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(v.Profiles)
	for _, e := range emails {
		if s, ok, err := db.Suppressed(ctx, e); err != nil {
			t.Fatal(err)
		} else if ok {
			v.Suppressions = append(v.Suppressions, fmt.Sprintf("%s %s %s %s", s.Email, s.Reason, s.RecordID, s.At.UTC().Format(time.RFC3339)))
		}
	}
	return v
}

// TestDuplicateShuffledDelivery delivers every connector's sample events
// once in order to one nudge, and twice each in a random order to
// another; both must answer alike and end in the same stored state.
func TestDuplicateShuffledDelivery(t *testing.T) {
	keys := newESPKeys(t)
	all := connectorDeliveries(t, keys)
	emails := []string{"dup-ann@example.com", "dup-bo@example.com"}
	for _, name := range []string{"shopify", "woocommerce", "stripe", "sendgrid", "mailgun", "web"} {
		ds := all[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if len(ds) == 0 {
				t.Fatal("no sample deliveries")
			}
			opts := confOpts{SendGridPub: keys.sgPub, MailgunKey: keys.mg}
			inOrder, shuffled := openInproc(t, opts), openInproc(t, opts)
			ctx := context.Background()
			want := map[string]int{}
			for _, d := range ds {
				status, body := post(ctx, http.DefaultClient, inOrder.srv.URL+d.path, d.body, d.h)
				want[d.name] = status
				if status != http.StatusOK {
					t.Errorf("%s: in order: %d %s", d.name, status, body)
				}
			}
			twice := append(slices.Clone(ds), ds...)
			rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 3))
			rng.Shuffle(len(twice), func(i, j int) { twice[i], twice[j] = twice[j], twice[i] })
			for _, d := range twice {
				status, body := post(ctx, http.DefaultClient, shuffled.srv.URL+d.path, d.body, d.h)
				if status != want[d.name] {
					t.Errorf("%s: shuffled duplicate answered %d %s, in order %d", d.name, status, body, want[d.name])
				}
			}
			a := viewState(t, inOrder.app.Store, emails)
			b := viewState(t, shuffled.app.Store, emails)
			if a.Stats.Records == 0 {
				t.Fatalf("nothing stored: %+v", a.Stats)
			}
			if !reflect.DeepEqual(a.Stats, b.Stats) {
				t.Errorf("stats differ:\nin order %+v\nshuffled %+v", a.Stats, b.Stats)
			}
			diff(t, "record", a.Records, b.Records)
			diff(t, "profile", a.Profiles, b.Profiles)
			diff(t, "suppression", a.Suppressions, b.Suppressions)
		})
	}
}

// diff reports the entries only one side has.
func diff(t *testing.T, what string, a, b []string) {
	t.Helper()
	for _, x := range a {
		if !slices.Contains(b, x) {
			t.Errorf("%s only after in-order delivery:\n  %s", what, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			t.Errorf("%s only after shuffled duplicate delivery:\n  %s", what, x)
		}
	}
}
