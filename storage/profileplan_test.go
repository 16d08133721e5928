package storage

import (
	"bytes"
	"context"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
)

// A profile update planned outside the group commit must be exactly the
// one the writer would make; records the plan does not cover get none.
func TestProfilePlanWritesWhatTheWriterWould(t *testing.T) {
	t.Parallel()
	at := t0.Add(time.Hour)
	withCustomer := func(r behavior.Record, id string) behavior.Record { r.CustomerID = id; return r }
	tests := []struct {
		name     string
		setup    []behavior.Record
		tweak    func(t *testing.T, db *DB, pid string) // after setup, on the first setup record's profile
		r        behavior.Record
		wantPlan bool
	}{
		{
			name:     "email_sent to a known address",
			setup:    []behavior.Record{rec("s1", behavior.CheckoutStarted, t0, "ann@example.com")},
			r:        rec("x", behavior.EmailSent, at, "ann@example.com"),
			wantPlan: true,
		},
		{
			name:  "an order with names, value and currency",
			setup: []behavior.Record{withCustomer(rec("s1", behavior.CustomerUpdated, t0, "ann@example.com"), "c1")},
			r: func() behavior.Record {
				r := withCustomer(rec("x", behavior.OrderPlaced, at, "Ann@Example.com"), "c1")
				r.Person = &behavior.Person{FirstName: "Ann", Country: "DE"}
				r.Value, r.Currency = 5400, "EUR"
				return r
			}(),
			wantPlan: true,
		},
		{
			name:     "known by customer id only",
			setup:    []behavior.Record{withCustomer(rec("s1", behavior.CustomerUpdated, t0, "ann@example.com"), "c1")},
			r:        withCustomer(rec("x", behavior.PageViewed, at, ""), "c1"),
			wantPlan: true,
		},
		{
			name:  "an identity the profile lacks",
			setup: []behavior.Record{rec("s1", behavior.CheckoutStarted, t0, "ann@example.com")},
			r:     withCustomer(rec("x", behavior.OrderPlaced, at, "ann@example.com"), "c9"),
		},
		{
			name:  "another person's address on a shared customer id",
			setup: []behavior.Record{withCustomer(rec("s1", behavior.CustomerUpdated, t0, "ann@example.com"), "c1")},
			r:     withCustomer(rec("x", behavior.OrderPlaced, at, "bob@example.com"), "c1"),
		},
		{
			// Not made by today's code, which keeps one address per
			// profile, but a store may hold one from earlier versions.
			name:  "a profile holding a second address",
			setup: []behavior.Record{rec("s1", behavior.CheckoutStarted, t0, "ann@example.com")},
			tweak: func(t *testing.T, db *DB, pid string) {
				bob := behavior.Identity{Type: behavior.IdentEmail, Value: "bob@example.com"}
				err := db.update(context.Background(), func(tx *bolt.Tx) error {
					var p Profile
					if _, err := getJSON(tx.Bucket(bucketProfiles), []byte(pid), &p); err != nil {
						return err
					}
					p.Identities = append(p.Identities, bob)
					if err := putJSON(tx.Bucket(bucketProfiles), []byte(pid), p); err != nil {
						return err
					}
					return tx.Bucket(bucketIdentities).Put([]byte(bob.Key()), []byte(pid))
				})
				if err != nil {
					t.Fatal(err)
				}
			},
			r: rec("x", behavior.EmailSent, at, "ann@example.com"),
		},
		{
			name:  "two people's identities",
			setup: []behavior.Record{rec("s1", behavior.PageViewed, t0, "ann@example.com"), withCustomer(rec("s2", behavior.PageViewed, t0, ""), "c2")},
			r:     withCustomer(rec("x", behavior.OrderPlaced, at, "ann@example.com"), "c2"),
		},
		{
			name:  "an unsubscribe, which suppresses",
			setup: []behavior.Record{rec("s1", behavior.CheckoutStarted, t0, "ann@example.com")},
			r:     rec("x", behavior.Unsubscribed, at, "ann@example.com"),
		},
		{
			name:  "a consent grant, which lifts",
			setup: []behavior.Record{rec("s1", behavior.CheckoutStarted, t0, "ann@example.com")},
			r: func() behavior.Record {
				r := rec("x", behavior.ConsentChanged, at, "ann@example.com")
				r.Consent = &behavior.Consent{State: behavior.ConsentGranted, At: at}
				return r
			}(),
		},
		{
			name:  "a new person",
			setup: []behavior.Record{rec("s1", behavior.CheckoutStarted, t0, "ann@example.com")},
			r:     rec("x", behavior.CheckoutStarted, at, "bob@example.com"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, _ := openTestDB(t, Options{})
			res := mustAppend(t, db, tt.setup...)
			if tt.tweak != nil {
				tt.tweak(t, db, res.Profiles[tt.setup[0].ID])
			}
			p, err := db.prepareIngest(Ingest{Records: []behavior.Record{tt.r}})
			if err != nil {
				t.Fatal(err)
			}
			ps := []preparedIngest{p}
			db.planProfiles(ps)
			p = ps[0]
			pl := p.plans[0]
			if (pl != nil) != tt.wantPlan {
				t.Fatalf("plan = %v, want one: %v", pl != nil, tt.wantPlan)
			}
			// The writer's own answer, worked out without a plan in a
			// transaction that is then rolled back.
			tx, err := db.bolt.Begin(true)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback() }()
			if pl != nil && !planUsable(tx, pl) {
				t.Fatal("the plan does not hold although nothing was written since")
			}
			st := &appendState{db: db, tx: tx, now: db.now(), merged: map[string]string{}, seen: map[string]bool{}, res: AppendResult{Profiles: map[string]string{}}}
			r := p.records[0]
			pid, err := st.applyToProfile(r, r.Identities(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if pl == nil {
				return
			}
			want := tx.Bucket(bucketProfiles).Get([]byte(pid))
			if pl.pid != pid || !bytes.Equal(pl.after, want) {
				t.Errorf("plan writes %s: %s\nthe writer writes %s: %s", pl.pid, pl.after, pid, want)
			}
		})
	}
}

// A plan made before another write changed the profile is not taken: the
// writer works the update out afresh, so neither record's facts are lost.
func TestStaleProfilePlanIsRedone(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	pid := mustAppend(t, db, rec("s1", behavior.CheckoutStarted, t0, "ann@example.com")).Profiles["s1"]
	p, err := db.prepareIngest(Ingest{Records: []behavior.Record{rec("late", behavior.EmailSent, t0.Add(2*time.Hour), "ann@example.com")}})
	if err != nil {
		t.Fatal(err)
	}
	ps := []preparedIngest{p}
	db.planProfiles(ps)
	p = ps[0]
	if p.plans[0] == nil {
		t.Fatal("no plan")
	}
	// Another record of the same person lands between plan and commit.
	mustAppend(t, db, rec("between", behavior.EmailSent, t0.Add(time.Hour), "ann@example.com"))
	err = db.batch(ctx, func(tx *bolt.Tx) error {
		_, err := db.appendTx(tx, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	prof, err := db.Profile(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	if got := prof.Counts[behavior.EmailSent]; got != 2 {
		t.Errorf("email_sent count %d, want 2 (the stale plan was written over the record between)", got)
	}
	if got := prof.LastAt[behavior.EmailSent]; !got.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("last email_sent %s", got)
	}
}
