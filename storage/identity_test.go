package storage

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
)

func TestIdentityMerge(t *testing.T) {
	t.Parallel()
	anon := func(id string, kind behavior.Kind, at time.Time) behavior.Record {
		r := rec(id, kind, at, "")
		r.AnonymousID = "A"
		r.Items = []behavior.Item{{ProductID: "p1", Title: "Trail Runner", Price: 5400}}
		return r
	}
	checkout := anon("checkout", behavior.CheckoutStarted, t0.Add(time.Hour))
	checkout.Email = "e@example.com"
	checkout.Value = 5400
	stripe := rec("stripe", behavior.OrderPaid, t0.Add(2*time.Hour), "e@example.com")
	stripe.Source, stripe.CustomerID = "stripe", "cus_1"
	stripeOnly := rec("stripe-only", behavior.SubscriptionStarted, t0.Add(3*time.Hour), "")
	stripeOnly.Source, stripeOnly.CustomerID = "stripe", "cus_1"

	tests := []struct {
		name string
		// ingests are appended in order, one Append each.
		ingests [][]behavior.Record
		// profilesBefore is how many profiles exist before the last ingest.
		profilesBefore int
	}{
		{
			name:           "browse then checkout then stripe",
			ingests:        [][]behavior.Record{{anon("view", behavior.ProductViewed, t0)}, {checkout}, {stripe}, {stripeOnly}},
			profilesBefore: 1,
		},
		{
			name: "two profiles linked later",
			ingests: [][]behavior.Record{
				{anon("view", behavior.ProductViewed, t0)},
				{stripe},
				{stripeOnly},
				{checkout}, // email e + anonymous A: links both
			},
			profilesBefore: 2,
		},
		{
			name: "linked inside one ingest",
			ingests: [][]behavior.Record{
				{anon("view", behavior.ProductViewed, t0), stripe, stripeOnly, checkout},
			},
			profilesBefore: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, _ := openTestDB(t, Options{})
			ctx := context.Background()
			idsByRecord := map[string]string{}
			for i, in := range tc.ingests {
				if i == len(tc.ingests)-1 {
					if n := countProfiles(t, db); n != tc.profilesBefore {
						t.Fatalf("%d profiles before the last ingest, want %d", n, tc.profilesBefore)
					}
				}
				res := mustAppend(t, db, in...)
				for k, v := range res.Profiles {
					idsByRecord[k] = v
				}
			}
			if n := countProfiles(t, db); n != 1 {
				t.Fatalf("%d profiles, want 1", n)
			}
			p, err := db.ProfileByEmail(ctx, "e@example.com")
			if err != nil {
				t.Fatal(err)
			}
			for _, ident := range []behavior.Identity{
				{Type: behavior.IdentAnonymous, Value: "A"},
				{Type: behavior.IdentCustomer, Namespace: "stripe", Value: "cus_1"},
			} {
				q, err := db.ProfileByIdentity(ctx, ident)
				if err != nil || q.ID != p.ID {
					t.Errorf("%s → %q, %v; want %q", ident.Key(), q.ID, err, p.ID)
				}
			}
			// Every id ever handed out resolves to the survivor.
			for rid, pid := range idsByRecord {
				q, err := db.Profile(ctx, pid)
				if err != nil || q.ID != p.ID {
					t.Errorf("record %s's profile %s → %q, %v", rid, pid, q.ID, err)
				}
			}
			recs, err := db.RecordsByProfile(ctx, p.ID, RecordQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := recordIDs(recs), []string{"view", "checkout", "stripe", "stripe-only"}; !slices.Equal(got, want) {
				t.Errorf("records %v, want %v", got, want)
			}
			if p.Counts[behavior.ProductViewed] != 1 || p.Counts[behavior.CheckoutStarted] != 1 || p.Counts[behavior.OrderPaid] != 1 ||
				!p.FirstSeen.Equal(t0) || !p.LastSeen.Equal(t0.Add(3*time.Hour)) || p.Email != "e@example.com" || len(p.Identities) != 3 {
				t.Errorf("merged profile %+v", p)
			}
			if ids, err := db.ProfilesByProduct(ctx, "p1", nil, time.Time{}); err != nil || !slices.Equal(ids, []string{p.ID}) {
				t.Errorf("ProfilesByProduct = %v, %v", ids, err)
			}
			// Envelopes point at the survivor, so Prune and Forget find
			// the index entries.
			err = db.view(ctx, func(tx *bolt.Tx) error {
				for _, r := range recs {
					sr, _, err := getRecordTx(tx, []byte(r.ID))
					if err != nil {
						return err
					}
					if sr.P != p.ID {
						t.Errorf("record %s envelope profile %s, want %s", r.ID, sr.P, p.ID)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestMergeMovesJourneysAndSends(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	a := mustAppend(t, db, rec("a", behavior.PageViewed, t0, "a@example.com")).Profiles["a"]
	// b is known only by a store customer id (no email yet), so linking it
	// to a's email merges the two.
	bRec := rec("b", behavior.OrderPlaced, t0.Add(time.Hour), "")
	bRec.CustomerID = "cust-b"
	b := mustAppend(t, db, bRec).Profiles["b"]
	// Journey, send and decision entries for b, written the way the rules
	// and sending code lay them out (db.go), with join() for sends too.
	err := db.update(ctx, func(tx *bolt.Tx) error {
		if err := putJSON(tx.Bucket(bucketJourneys), []byte("j1"), Journey{ID: "j1", Rule: "r", ProfileID: b}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketJourneysByProfile).Put(join([]byte(b), []byte("j1")), nil); err != nil {
			return err
		}
		if err := putJSON(tx.Bucket(bucketSends), []byte("s1"), Send{ID: "s1", ProfileID: b}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSendsByProfile).Put(join([]byte(b), timeKey(t0), []byte("s1")), nil); err != nil {
			return err
		}
		return tx.Bucket(bucketDecisions).Put(join([]byte(b), timeKey(t0), u64(1)), []byte(`{"rule":"r"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	link := rec("link", behavior.CustomerUpdated, t0.Add(2*time.Hour), "")
	link.CustomerID, link.AnonymousID = "cust-b", "anon"
	mustAppend(t, db, link)
	link2 := rec("link2", behavior.CustomerUpdated, t0.Add(3*time.Hour), "a@example.com")
	link2.AnonymousID = "anon"
	res := mustAppend(t, db, link2)
	if res.Profiles["link2"] != a {
		t.Fatalf("survivor %s, want the older %s", res.Profiles["link2"], a)
	}
	err = db.view(ctx, func(tx *bolt.Tx) error {
		var j Journey
		if _, err := getJSON(tx.Bucket(bucketJourneys), []byte("j1"), &j); err != nil || j.ProfileID != a {
			t.Errorf("journey %+v, %v", j, err)
		}
		if tx.Bucket(bucketJourneysByProfile).Get(join([]byte(a), []byte("j1"))) == nil {
			t.Error("journey index not moved")
		}
		var s Send
		if _, err := getJSON(tx.Bucket(bucketSends), []byte("s1"), &s); err != nil || s.ProfileID != a {
			t.Errorf("send %+v, %v", s, err)
		}
		if tx.Bucket(bucketSendsByProfile).Get(join([]byte(a), timeKey(t0), []byte("s1"))) == nil {
			t.Error("send index not moved")
		}
		if tx.Bucket(bucketDecisions).Get(join([]byte(a), timeKey(t0), u64(1))) == nil {
			t.Error("decision not moved")
		}
		for _, bk := range [][]byte{bucketJourneysByProfile, bucketSendsByProfile, bucketDecisions, bucketRecByProfile} {
			k, _ := tx.Bucket(bk).Cursor().Seek(profilePrefix(b))
			if k != nil && string(k[:len(b)]) == b {
				t.Errorf("%s still has entries of %s", bk, b)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.Profile(ctx, b)
	if err != nil || p.ID != a || p.OrdersCount != 1 || p.Email != "a@example.com" {
		t.Errorf("Profile(old) = %+v, %v", p, err)
	}
}

func countProfiles(t testing.TB, db *DB) int {
	t.Helper()
	n := 0
	if err := db.ScanProfiles(context.Background(), func(Profile) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConsentOutOfOrder(t *testing.T) {
	t.Parallel()
	consent := func(id, state string, at time.Time) behavior.Record {
		r := rec(id, behavior.ConsentChanged, at, "ann@example.com")
		r.Source = "shopify"
		r.Consent = &behavior.Consent{State: state, Level: "single_opt_in", CollectedFrom: "checkout"}
		return r
	}
	tests := []struct {
		name      string
		ingests   []behavior.Record
		wantState string
		wantID    string
	}{
		{"in order", []behavior.Record{consent("c1", "granted", t0), consent("c2", "denied", t0.Add(time.Hour))}, "denied", "c2"},
		{"late old grant ignored", []behavior.Record{consent("c2", "denied", t0.Add(time.Hour)), consent("c1", "granted", t0)}, "denied", "c2"},
		{"same instant: last wins", []behavior.Record{consent("c1", "denied", t0), consent("c2", "granted", t0)}, "granted", "c2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, _ := openTestDB(t, Options{})
			for _, r := range tc.ingests {
				mustAppend(t, db, r)
			}
			p, err := db.ProfileByEmail(context.Background(), "ann@example.com")
			if err != nil {
				t.Fatal(err)
			}
			c := p.Consent
			if c.State != tc.wantState || c.RecordID != tc.wantID || c.Source != "shopify" || c.Level != "single_opt_in" || c.CollectedFrom != "checkout" {
				t.Errorf("consent %+v, want %s from %s", c, tc.wantState, tc.wantID)
			}
		})
	}
	t.Run("SetConsent", func(t *testing.T) {
		t.Parallel()
		db, _ := openTestDB(t, Options{})
		ctx := context.Background()
		pid := mustAppend(t, db, consent("c1", "granted", t0)).Profiles["c1"]
		if err := db.SetConsent(ctx, pid, ConsentState{State: "denied", Source: "admin", At: t0.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if p, _ := db.Profile(ctx, pid); p.Consent.State != "granted" {
			t.Errorf("older SetConsent applied: %+v", p.Consent)
		}
		if err := db.SetConsent(ctx, pid, ConsentState{State: "denied", Source: "admin"}); err != nil {
			t.Fatal(err)
		}
		if p, _ := db.Profile(ctx, pid); p.Consent.State != "denied" || p.Consent.Source != "admin" || !p.Consent.At.Equal(t0) {
			t.Errorf("SetConsent not applied: %+v", p.Consent)
		}
		if err := db.SetConsent(ctx, "nobody", ConsentState{State: "denied"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown profile: %v", err)
		}
	})
}

func TestSetScores(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	pid := mustAppend(t, db, rec("a", behavior.PageViewed, t0, "ann@example.com")).Profiles["a"]
	before, _ := db.Profile(ctx, pid)
	scores := map[string]float64{"p_alive": 0.8}
	if err := db.SetScores(ctx, pid, scores, "loyal", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	scores["p_alive"] = 0 // the store holds its own copy
	p, err := db.Profile(ctx, pid)
	if err != nil || p.Scores["p_alive"] != 0.8 || p.Segment != "loyal" || !p.ScoredAt.Equal(t0.Add(time.Hour)) || !p.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("profile %+v, %v", p, err)
	}
}

// Two people who share a device (one anonymous id) or a reused token keep
// separate profiles: a shared identity never merges two different email
// addresses, so one person's cart reminder never goes to the other.
func TestSharedIdentityNeverMergesTwoEmails(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	first := rec("r1", behavior.CheckoutStarted, t0, "ann@example.com")
	first.AnonymousID = "shared-device"
	second := rec("r2", behavior.CheckoutStarted, t0.Add(time.Hour), "bo@example.com")
	second.AnonymousID = "shared-device"
	anonOnly := rec("r3", behavior.ProductViewed, t0.Add(2*time.Hour), "")
	anonOnly.AnonymousID = "shared-device"
	pa := mustAppend(t, db, first).Profiles["r1"]
	pb := mustAppend(t, db, second).Profiles["r2"]
	p3 := mustAppend(t, db, anonOnly).Profiles["r3"]
	if pa == pb {
		t.Fatalf("ann and bo were merged into %s", pa)
	}
	if p3 != pa {
		t.Errorf("an anonymous view on the shared device went to %s, want its first owner %s", p3, pa)
	}
	for email, want := range map[string]string{"ann@example.com": pa, "bo@example.com": pb} {
		p, err := db.ProfileByEmail(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		if p.ID != want {
			t.Errorf("%s resolves to %s, want %s", email, p.ID, want)
		}
		n := 0
		for _, id := range p.Identities {
			if id.Type == behavior.IdentEmail {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s's profile holds %d email addresses: %v", email, n, p.Identities)
		}
	}
	recs, err := db.RecordsByProfile(ctx, pb, RecordQuery{})
	if err != nil || len(recs) != 1 || recs[0].ID != "r2" {
		t.Fatalf("bo's records: %v %v", recs, err)
	}
}
