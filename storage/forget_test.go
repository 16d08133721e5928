package storage

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
)

func TestForget(t *testing.T) {
	t.Parallel()
	const ann = "forget.me@example.com"
	tests := []struct {
		name string
		// byAlias forgets through the id of a profile merged away.
		byAlias bool
	}{
		{"by id", false},
		{"by merged-away id", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, path := openTestDB(t, Options{KeepRaw: true})
			ctx := context.Background()
			body := []byte(`{"customer":{"email":"` + ann + `","first_name":"Ann"}}`)

			anon := rec("view", behavior.ProductViewed, t0, "")
			anon.AnonymousID = "anon-1"
			anon.Items = []behavior.Item{{ProductID: "p1", Title: "Trail Runner"}}
			oldID := mustAppend(t, db, anon).Profiles["view"]
			order := rec("order", behavior.OrderPlaced, t0.Add(time.Hour), ann)
			order.Items = anon.Items
			order.Person = &behavior.Person{FirstName: "Ann"}
			res, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: "del-1", Source: "shopify", Body: body}, Records: []behavior.Record{order}})
			if err != nil {
				t.Fatal(err)
			}
			link := rec("link", behavior.CheckoutStarted, t0.Add(2*time.Hour), ann)
			link.AnonymousID = "anon-1"
			mustAppend(t, db, link, rec("unsub", behavior.Unsubscribed, t0.Add(3*time.Hour), ann))
			pid := res.Profiles["order"]
			if p, _ := db.Profile(ctx, oldID); p.ID != pid && p.ID != oldID {
				t.Fatalf("merge did not happen: %s %s %s", p.ID, pid, oldID)
			}
			survivor, _ := db.Profile(ctx, pid)
			// An ignored-topic delivery: no records point at it.
			if _, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: "del-orphan", Source: "shopify", Body: bytes.ToUpper(body)}}); err != nil {
				t.Fatal(err)
			}
			// Someone else, who must survive.
			bob := rec("bob", behavior.OrderPlaced, t0, "bob@example.com")
			bob.Items = anon.Items
			bobRes, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: "del-bob", Source: "shopify", Body: []byte("bob")}, Records: []behavior.Record{bob}})
			if err != nil {
				t.Fatal(err)
			}

			j := Journey{ID: "j-ann", Rule: "cart", ProfileID: survivor.ID, Status: JourneyWaiting, StartedAt: t0, DueAt: t0.Add(time.Hour)}
			if err := db.PutJourney(ctx, j, JobSpec{Kind: "step", UniqueKey: "step:j-ann:1", DueAt: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if err := db.AppendDecision(ctx, survivor.ID, Decision{At: t0, Rule: "cart", RecordID: "link", Reason: "filtered"}); err != nil {
				t.Fatal(err)
			}
			s := Send{ID: "s-ann", JourneyID: "j-ann", Rule: "cart", Step: 1, ProfileID: survivor.ID, Email: ann,
				Provider: "log", Status: SendSent, ProviderMessageID: "<msg-1@mg>", Message: []byte(`{"to":"` + ann + `"}`)}
			if _, _, err := db.CreateSend(ctx, s, JobSpec{Kind: "send", UniqueKey: "send:s-ann", DueAt: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}

			target := pid
			if tc.byAlias {
				target = oldID
				if target == survivor.ID {
					target = pid
				}
			}
			if err := db.Forget(ctx, target); err != nil {
				t.Fatal(err)
			}

			if _, err := db.ProfileByEmail(ctx, ann); !errors.Is(err, ErrNotFound) {
				t.Errorf("profile by email: %v", err)
			}
			for _, id := range []string{pid, oldID} {
				if _, err := db.Profile(ctx, id); !errors.Is(err, ErrNotFound) {
					t.Errorf("profile %s: %v", id, err)
				}
			}
			for _, id := range []string{"view", "order", "link", "unsub"} {
				if _, err := db.Record(ctx, id); !errors.Is(err, ErrNotFound) {
					t.Errorf("record %s: %v", id, err)
				}
			}
			for _, id := range []string{"del-1", "del-orphan"} {
				if _, err := db.Delivery(ctx, id); !errors.Is(err, ErrNotFound) {
					t.Errorf("delivery %s: %v", id, err)
				}
			}
			if _, err := db.Journey(ctx, "j-ann"); !errors.Is(err, ErrNotFound) {
				t.Errorf("journey: %v", err)
			}
			if _, err := db.Send(ctx, "s-ann"); !errors.Is(err, ErrNotFound) {
				t.Errorf("send: %v", err)
			}
			if _, err := db.SendByProviderMessageID(ctx, "msg-1@mg"); !errors.Is(err, ErrNotFound) {
				t.Errorf("send by provider id: %v", err)
			}
			if d, _ := db.Decisions(ctx, survivor.ID); len(d) != 0 {
				t.Errorf("decisions left: %v", d)
			}
			jobs, err := db.ClaimDueJobs(ctx, t0.Add(24*time.Hour), 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range jobs {
				if j.UniqueKey != "" {
					t.Errorf("pending job of the forgotten person survives: %+v", j)
				}
			}
			sup, ok, err := db.Suppressed(ctx, strings.ToUpper(ann))
			if err != nil || !ok || sup.Reason != behavior.SuppressUnsubscribed {
				t.Errorf("suppression lost: %+v %v %v", sup, ok, err)
			}
			err = db.ListSuppressions(ctx, func(s Suppression) error {
				if !strings.HasPrefix(s.Email, "sha256:") || s.RecordID != "" {
					t.Errorf("suppression not hashed: %+v", s)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			err = db.view(ctx, func(tx *bolt.Tx) error {
				for _, b := range [][]byte{bucketIdentities, bucketAliases, bucketRecByProfile, bucketJourneysByProfile, bucketJourneysByRule,
					bucketSendsByProfile, bucketSendsByStatus, bucketSendsByProviderID, bucketDecisions} {
					_ = tx.Bucket(b).ForEach(func(k, v []byte) error {
						if bytes.Contains(k, []byte(survivor.ID)) || bytes.Contains(k, []byte(ann)) || bytes.Contains(k, []byte("anon-1")) ||
							bytes.Contains(k, []byte("j-ann")) || bytes.Contains(k, []byte("s-ann")) || bytes.Equal(v, []byte(survivor.ID)) {
							t.Errorf("%s keeps %q → %q", b, k, v)
						}
						return nil
					})
				}
				if tx.Bucket(bucketProductViews).Get(join([]byte("p1"), []byte(survivor.ID))) != nil {
					t.Error("product view kept")
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}

			// Bob is untouched.
			if p, err := db.ProfileByEmail(ctx, "bob@example.com"); err != nil || p.ID != bobRes.Profiles["bob"] {
				t.Errorf("bob: %v", err)
			}
			if _, err := db.Delivery(ctx, "del-bob"); err != nil {
				t.Errorf("bob's delivery: %v", err)
			}
			if ids, _ := db.ProfilesByProduct(ctx, "p1", nil, time.Time{}); len(ids) != 1 {
				t.Errorf("profiles by product %v", ids)
			}
			if err := db.Forget(ctx, target); !errors.Is(err, ErrNotFound) {
				t.Errorf("second forget: %v", err)
			}
			if err := db.Check(); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, needle := range []string{ann, strings.ToUpper(ann), base64.StdEncoding.EncodeToString(body), "anon-1"} {
				if i := bytes.Index(raw, []byte(needle)); i >= 0 {
					t.Errorf("%q still in the data file at offset %d (page %d)", needle, i, i/os.Getpagesize())
				}
			}
			if !bytes.Contains(raw, []byte("bob@example.com")) {
				t.Error("sanity: bob's address should be in the file")
			}
		})
	}
}

// TestForgetScrubsLargeHistory forgets a person whose raw deliveries span
// overflow pages, among others' data, and checks no byte of the address is
// left in the file.
func TestForgetScrubsLargeHistory(t *testing.T) {
	t.Parallel()
	// NoSync only skips fsync; the file's bytes after Close are the same.
	db, path := openTestDB(t, Options{KeepRaw: true, NoSync: true})
	ctx := context.Background()
	const ann = "big.history@example.com"
	pad := strings.Repeat("x", 20000)
	var pid string
	for i := range 60 {
		email := ann
		if i%3 == 0 {
			email = fmt.Sprintf("other%d@example.com", i)
		}
		var recs []behavior.Record
		for j := range 5 {
			r := rec(fmt.Sprintf("r%d-%d", i, j), behavior.OrderPlaced, t0.Add(time.Duration(i*5+j)*time.Minute), email)
			r.Items = []behavior.Item{{ProductID: fmt.Sprintf("p%d", j)}}
			recs = append(recs, r)
		}
		body := []byte(`{"email":"` + email + `","pad":"` + pad + `"}`)
		res, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: fmt.Sprintf("d%d", i), Body: body}, Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		if email == ann {
			pid = res.Profiles[recs[0].ID]
		}
	}
	// A small scrub step, so filling the free pages takes many transactions.
	if err := db.forget(ctx, pid, 7); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.Stats(ctx); s.Records != 100 || s.Deliveries != 20 || s.Profiles != 20 {
		t.Errorf("stats after forget %+v", s)
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(raw, []byte(ann)); i >= 0 {
		t.Errorf("address still in the data file at offset %d", i)
	}
	for _, enc := range []string{`{"email":"` + ann, `"email":"` + ann, `email":"` + ann} {
		b64 := base64.StdEncoding.EncodeToString([]byte(enc))
		if bytes.Contains(raw, []byte(b64[:len(b64)-4])) {
			t.Errorf("base64 of the address still in the data file")
		}
	}
}

// A forgotten person who was never unsubscribed stays unmailable: the
// store goes on restating their old consent in later webhooks (the audit
// forgot zed1, then a checkout restating consent from January brought the
// profile back granted and mailed). Only an opt-in decided after the
// erasure lifts it.
func TestForgetSuppressesTheAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		decided    time.Time // the restated grant's own date
		wantLifted bool
	}{
		{"old consent restated after the erasure", t0.Add(-30 * 24 * time.Hour), false},
		{"an opt-in decided after the erasure", t0.Add(2 * time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(t0)
			db, _ := openTestDB(t, Options{Clock: clk})
			ctx := context.Background()
			const email = "zed1@example.com"
			r := rec("c1", behavior.CheckoutStarted, t0.Add(-time.Hour), email)
			r.Consent = &behavior.Consent{State: behavior.ConsentGranted, At: t0.Add(-30 * 24 * time.Hour)}
			res := mustAppend(t, db, r)
			if err := db.Forget(ctx, res.Profiles["c1"]); err != nil {
				t.Fatal(err)
			}
			s, ok, err := db.Suppressed(ctx, email)
			if err != nil || !ok || s.Reason != behavior.SuppressForgotten || s.Email != email {
				t.Fatalf("after forget: %+v %v %v, want suppressed as forgotten", s, ok, err)
			}
			clk.Set(t0.Add(3 * time.Hour))
			again := rec("c2", behavior.CheckoutStarted, clk.Now(), email)
			again.Consent = &behavior.Consent{State: behavior.ConsentGranted, At: tc.decided}
			mustAppend(t, db, again)
			if _, ok, _ := db.Suppressed(ctx, email); ok == tc.wantLifted {
				t.Errorf("suppressed = %v, want %v", ok, !tc.wantLifted)
			}
		})
	}
}

// Forget finds raw deliveries stored without records (ignored topics) by
// the address they name, as a whole address: forgetting ann@x.com must
// not erase joann@x.com's, and must find ann's even behind a JSON escape.
func TestForgetMatchesWholeAddresses(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{KeepRaw: true})
	ctx := context.Background()
	res := mustAppend(t, db, rec("a1", behavior.OrderPlaced, t0, "ann@x.com"))
	orphan := func(id, body string) {
		t.Helper()
		if _, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: id, Source: "shopify", Topic: "shop/update", Body: []byte(body)}}); err != nil {
			t.Fatal(err)
		}
	}
	orphan("mine-escaped", `{"contact":"ann\u0040x.com"}`)
	orphan("mine-named", `{"to":"Ann <ANN@x.com>"}`)
	orphan("joann", `{"contact":"joann@x.com"}`)
	orphan("au", `{"contact":"ann@x.com.au"}`)
	if err := db.Forget(ctx, res.Profiles["a1"]); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"mine-escaped": false, "mine-named": false, "joann": true, "au": true} {
		_, err := db.Delivery(ctx, id)
		if got := err == nil; got != want {
			t.Errorf("delivery %s kept=%v, want %v (%v)", id, got, want, err)
		}
	}
}
