package storage

import (
	"context"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

func TestSuppressionsFromRecords(t *testing.T) {
	t.Parallel()
	const email = "ann@example.com"
	unsub := func(id string, at time.Time) behavior.Record { return rec(id, behavior.Unsubscribed, at, email) }
	bounce := func(id string, at time.Time, permanent bool) behavior.Record {
		r := rec(id, behavior.EmailBounced, at, email)
		r.Attrs = map[string]any{behavior.AttrPermanent: permanent}
		return r
	}
	spam := func(id string, at time.Time) behavior.Record { return rec(id, behavior.SpamReported, at, email) }
	grant := func(id string, at time.Time) behavior.Record {
		r := rec(id, behavior.ConsentChanged, at, email)
		r.Consent = &behavior.Consent{State: behavior.ConsentGranted}
		return r
	}
	// restated is an order carrying a grant, as stores repeat the
	// customer's stored consent: decided at decided (zero: undated).
	restated := func(id string, at, decided time.Time) behavior.Record {
		r := rec(id, behavior.OrderPlaced, at, email)
		r.Consent = &behavior.Consent{State: behavior.ConsentGranted, At: decided}
		return r
	}
	tests := []struct {
		name       string
		recs       []behavior.Record
		wantReason string // "" = not suppressed
		wantRecord string
	}{
		{"undated grant in a later order does not lift", []behavior.Record{unsub("u", t0), restated("o", t0.Add(time.Hour), time.Time{})}, behavior.SuppressUnsubscribed, "u"},
		{"grant decided before, restated after, does not lift", []behavior.Record{unsub("u", t0), restated("o", t0.Add(time.Hour), t0.Add(-24*time.Hour))}, behavior.SuppressUnsubscribed, "u"},
		{"grant decided after the unsubscribe lifts", []behavior.Record{unsub("u", t0), restated("o", t0.Add(time.Hour), t0.Add(time.Minute))}, "", ""},
		{"unsubscribe", []behavior.Record{unsub("u", t0)}, behavior.SuppressUnsubscribed, "u"},
		{"soft bounce does not suppress", []behavior.Record{bounce("b", t0, false)}, "", ""},
		{"hard bounce", []behavior.Record{bounce("b", t0, true)}, behavior.SuppressBounced, "b"},
		{"later grant lifts unsubscribe", []behavior.Record{unsub("u", t0), grant("g", t0.Add(time.Hour))}, "", ""},
		{"resubscribe lifts unsubscribe", []behavior.Record{unsub("u", t0), rec("r", behavior.Resubscribed, t0.Add(time.Hour), email)}, "", ""},
		{"older grant does not lift", []behavior.Record{unsub("u", t0), grant("g", t0.Add(-time.Hour))}, behavior.SuppressUnsubscribed, "u"},
		{"grant never lifts bounce", []behavior.Record{bounce("b", t0, true), grant("g", t0.Add(time.Hour))}, behavior.SuppressBounced, "b"},
		{"grant never lifts spam", []behavior.Record{spam("s", t0), grant("g", t0.Add(time.Hour))}, behavior.SuppressSpam, "s"},
		{"spam outranks earlier unsubscribe", []behavior.Record{unsub("u", t0), spam("s", t0.Add(time.Hour))}, behavior.SuppressSpam, "s"},
		{"unsubscribe keeps earlier bounce", []behavior.Record{bounce("b", t0, true), unsub("u", t0.Add(time.Hour))}, behavior.SuppressBounced, "b"},
		{"first unsubscribe kept", []behavior.Record{unsub("u1", t0), unsub("u2", t0.Add(time.Hour))}, behavior.SuppressUnsubscribed, "u1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, _ := openTestDB(t, Options{})
			for _, r := range tc.recs {
				mustAppend(t, db, r)
			}
			s, ok, err := db.Suppressed(context.Background(), "ANN@example.com")
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tc.wantReason != "") || s.Reason != tc.wantReason || s.RecordID != tc.wantRecord {
				t.Errorf("suppressed=%v %+v, want %q from %q", ok, s, tc.wantReason, tc.wantRecord)
			}
			if ok && (s.Email != email || s.Source != "test") {
				t.Errorf("entry %+v", s)
			}
		})
	}
}

func TestSuppressManual(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	if err := db.Suppress(ctx, Suppression{Email: "Bob@Example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Suppress(ctx, Suppression{Email: "not-an-address"}); err == nil {
		t.Error("bad address accepted")
	}
	s, ok, err := db.Suppressed(ctx, "bob@example.com")
	if err != nil || !ok || s.Reason != behavior.SuppressManual || !s.At.Equal(t0) {
		t.Fatalf("%+v %v %v", s, ok, err)
	}
	// An opt-in does not lift a manual entry.
	r := rec("g", behavior.ConsentChanged, t0.Add(time.Hour), "bob@example.com")
	r.Consent = &behavior.Consent{State: behavior.ConsentGranted}
	mustAppend(t, db, r)
	if _, ok, _ := db.Suppressed(ctx, "bob@example.com"); !ok {
		t.Error("grant lifted a manual suppression")
	}
	var listed []string
	if err := db.ListSuppressions(ctx, func(s Suppression) error { listed = append(listed, s.Email); return nil }); err != nil || len(listed) != 1 {
		t.Errorf("list %v %v", listed, err)
	}
	if err := db.Unsuppress(ctx, "BOB@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.Suppressed(ctx, "bob@example.com"); ok {
		t.Error("still suppressed")
	}
	if err := db.Unsuppress(ctx, "nobody@example.com"); err != nil {
		t.Errorf("unsuppress absent: %v", err)
	}
}

func TestSetConsentGrantLiftsUnsubscribe(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	pid := mustAppend(t, db, rec("u", behavior.Unsubscribed, t0, "ann@example.com")).Profiles["u"]
	if err := db.SetConsent(ctx, pid, ConsentState{State: behavior.ConsentGranted, Source: "unsubscribe_page", At: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.Suppressed(ctx, "ann@example.com"); ok {
		t.Error("grant did not lift the unsubscribe")
	}
}
