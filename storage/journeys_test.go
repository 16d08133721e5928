package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/clock"
)

var journeyT0 = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)

func openJourneyDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), FileName), Options{Clock: clock.NewFake(journeyT0)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestPutJourneyIndexesAndEnqueuesAtomically(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openJourneyDB(t)
	j := Journey{ID: "j1", Rule: "cart", ProfileID: "p1", TriggerRecord: "r1", Step: 1, Status: JourneyWaiting, StartedAt: journeyT0, DueAt: journeyT0.Add(time.Hour)}
	step := JobSpec{Kind: "step", UniqueKey: "step:j1:1", DueAt: j.DueAt}
	require.NoError(t, db.PutJourney(ctx, j, step))
	// The same step job again (a replayed evaluation) is not enqueued twice.
	require.NoError(t, db.PutJourney(ctx, j, step))

	got, err := db.Journey(ctx, "j1")
	require.NoError(t, err)
	require.Equal(t, "cart", got.Rule)
	require.True(t, got.Active())

	due, ok, err := db.NextJobDue(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, j.DueAt, due)
	jobs, err := db.ClaimDueJobs(ctx, j.DueAt, 10)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	require.Equal(t, "step:j1:1", jobs[0].UniqueKey)

	// A rule rename (only tests do that) moves the rule index entry.
	j.Rule = "cart2"
	require.NoError(t, db.PutJourney(ctx, j))
	var cart, cart2 []string
	require.NoError(t, db.ScanJourneys(ctx, "cart", func(j Journey) error { cart = append(cart, j.ID); return nil }))
	require.NoError(t, db.ScanJourneys(ctx, "cart2", func(j Journey) error { cart2 = append(cart2, j.ID); return nil }))
	require.Empty(t, cart)
	require.Equal(t, []string{"j1"}, cart2)

	// So does a move to another profile (a merge rewrites journeys
	// itself; PutJourney must still keep the index right), and a step
	// moving on under the same profile and rule keeps both entries.
	j.ProfileID = "p2"
	require.NoError(t, db.PutJourney(ctx, j))
	j.Step, j.UpdatedAt = 2, journeyT0.Add(time.Hour)
	require.NoError(t, db.PutJourney(ctx, j))
	for pid, want := range map[string][]string{"p1": nil, "p2": {"j1"}} {
		js, err := db.JourneysByProfile(ctx, pid)
		require.NoError(t, err)
		var ids []string
		for _, x := range js {
			ids = append(ids, x.ID)
		}
		require.Equal(t, want, ids, "journeys of %s", pid)
	}
	got, err = db.Journey(ctx, "j1")
	require.NoError(t, err)
	require.Equal(t, 2, got.Step)

	_, err = db.Journey(ctx, "nope")
	require.True(t, errors.Is(err, ErrNotFound))
	require.True(t, errors.Is(db.PutJourney(ctx, Journey{ID: "x"}), ErrInvalid))
}

func TestPutJourneyFailedJobsWriteNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openJourneyDB(t)
	j := Journey{ID: "j1", Rule: "cart", ProfileID: "p1", Status: JourneyWaiting, StartedAt: journeyT0}
	err := db.PutJourney(ctx, j, JobSpec{UniqueKey: "no-kind"})
	require.True(t, errors.Is(err, ErrInvalid), "%v", err)
	_, err = db.Journey(ctx, "j1")
	require.True(t, errors.Is(err, ErrNotFound), "journey must roll back with its job")
	js, err := db.JourneysByProfile(ctx, "p1")
	require.NoError(t, err)
	require.Empty(t, js)
}

func TestJourneysByProfileAndScan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openJourneyDB(t)
	// Stored out of order; read back oldest first. "p1x" must not leak
	// into "p1" (prefix scans stop at the separator).
	for _, j := range []Journey{
		{ID: "c", Rule: "r1", ProfileID: "p1", StartedAt: journeyT0.Add(2 * time.Hour)},
		{ID: "a", Rule: "r2", ProfileID: "p1", StartedAt: journeyT0},
		{ID: "b", Rule: "r1", ProfileID: "p1x", StartedAt: journeyT0.Add(time.Hour)},
	} {
		require.NoError(t, db.PutJourney(ctx, j))
	}
	js, err := db.JourneysByProfile(ctx, "p1")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "c"}, []string{js[0].ID, js[1].ID})

	var all, r1 []string
	require.NoError(t, db.ScanJourneys(ctx, "", func(j Journey) error { all = append(all, j.ID); return nil }))
	require.NoError(t, db.ScanJourneys(ctx, "r1", func(j Journey) error {
		r1 = append(r1, j.ID)
		// fn may write: the scan's transaction has ended.
		j.Status = JourneyExited
		return db.PutJourney(ctx, j)
	}))
	require.ElementsMatch(t, []string{"a", "b", "c"}, all)
	require.ElementsMatch(t, []string{"b", "c"}, r1)
	stop := errors.New("stop")
	require.ErrorIs(t, db.ScanJourneys(ctx, "", func(Journey) error { return stop }), stop)
}

func TestDecisionsDedupeAndCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openJourneyDB(t)
	d := Decision{At: journeyT0, Rule: "cart", RecordID: "r1", Reason: "trigger.where is false"}
	require.NoError(t, db.AppendDecision(ctx, "p1", d))
	require.NoError(t, db.AppendDecision(ctx, "p1", d), "a replay")
	other := d
	other.Rule = "browse"
	require.NoError(t, db.AppendDecision(ctx, "p1", other))
	got, err := db.Decisions(ctx, "p1")
	require.NoError(t, err)
	require.Equal(t, []Decision{d, other}, got)

	for i := range MaxDecisionsPerProfile + 10 {
		require.NoError(t, db.AppendDecision(ctx, "p2", Decision{At: journeyT0.Add(time.Duration(i) * time.Minute), Rule: "r", RecordID: fmt.Sprint(i)}))
	}
	got, err = db.Decisions(ctx, "p2")
	require.NoError(t, err)
	require.Len(t, got, MaxDecisionsPerProfile)
	require.Equal(t, "10", got[0].RecordID, "the oldest go first")
	require.Equal(t, fmt.Sprint(MaxDecisionsPerProfile+9), got[len(got)-1].RecordID)

	none, err := db.Decisions(ctx, "p")
	require.NoError(t, err)
	require.Empty(t, none, "p must not see p1's or p2's decisions")
	require.ErrorIs(t, db.AppendDecision(ctx, "", d), ErrInvalid)
}

func TestAppendDecisionsBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openJourneyDB(t)
	a := Decision{At: journeyT0, Rule: "a", RecordID: "r1", Reason: "trigger.where is false"}
	b := Decision{At: journeyT0, Rule: "b", RecordID: "r1", Started: true, JourneyID: "j", Reason: "started"}
	c := Decision{At: journeyT0.Add(time.Minute), Rule: "a", RecordID: "r2", Reason: "trigger.where is false"}
	require.NoError(t, db.AppendDecisions(ctx, "p1", a, b, a))
	require.NoError(t, db.AppendDecisions(ctx, "p1", b, c), "b is a replay")
	require.NoError(t, db.AppendDecisions(ctx, "p1"))
	got, err := db.Decisions(ctx, "p1")
	require.NoError(t, err)
	require.Equal(t, []Decision{a, b, c}, got)
}

// TestJourneysByProfileUntraced: the same journeys in the same order as
// JourneysByProfile, the active ones whole (they may be written back) and
// the ended ones without their trace.
func TestJourneysByProfileUntraced(t *testing.T) {
	ctx := context.Background()
	db := openJourneyDB(t)
	trace := []TraceEntry{{At: journeyT0, Step: 0, Action: "started"}, {At: journeyT0.Add(time.Hour), Step: 1, Action: "queued", Detail: "send s1"}}
	for i, status := range []string{JourneyCompleted, JourneyWaiting, JourneyExited, JourneyWaiting} {
		j := Journey{
			ID: fmt.Sprintf("j%d", i), Rule: "r", ProfileID: "p1", TriggerRecord: fmt.Sprintf("rec%d", i), Step: 2,
			Status: status, Reason: "because", Holdout: i == 2, StartedAt: journeyT0.Add(time.Duration(3-i) * time.Hour),
			DueAt: journeyT0.Add(48 * time.Hour), UpdatedAt: journeyT0.Add(time.Hour), Trace: trace,
		}
		require.NoError(t, db.PutJourney(ctx, j))
	}
	require.NoError(t, db.PutJourney(ctx, Journey{ID: "other", Rule: "r", ProfileID: "p2", Status: JourneyWaiting, Trace: trace}))

	whole, err := db.JourneysByProfile(ctx, "p1")
	require.NoError(t, err)
	got, err := db.JourneysByProfileUntraced(ctx, "p1")
	require.NoError(t, err)
	require.Len(t, got, len(whole))
	for i := range whole {
		want := whole[i]
		if !want.Active() {
			want.Trace = nil
		}
		require.Equal(t, want, got[i], "journey %d", i)
	}
	for _, j := range got {
		if j.Active() {
			require.Equal(t, trace, j.Trace, "active journey %s keeps its trace", j.ID)
		} else {
			require.Empty(t, j.Trace, "ended journey %s comes without its trace", j.ID)
		}
	}
}

// TestJourneyHeadMatchesJourney: journeyHead must carry every field of
// Journey but the trace, with the same type and JSON name, or evaluation
// would see ended journeys with a field missing.
func TestJourneyHeadMatchesJourney(t *testing.T) {
	jt, ht := reflect.TypeFor[Journey](), reflect.TypeFor[journeyHead]()
	n := 0
	for f := range jt.Fields() {
		if f.Name == "Trace" {
			continue
		}
		n++
		h, ok := ht.FieldByName(f.Name)
		if !ok || h.Type != f.Type || h.Tag.Get("json") != f.Tag.Get("json") {
			t.Errorf("journeyHead.%s does not match Journey.%s (%v %q)", f.Name, f.Name, f.Type, f.Tag.Get("json"))
		}
	}
	if ht.NumField() != n {
		t.Errorf("journeyHead has %d fields, Journey %d besides its trace", ht.NumField(), n)
	}
	// journey() copies every field: a head filled with non-zero values
	// gives a journey with none of them zero.
	v := reflect.New(ht).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Int:
			f.SetInt(1)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Struct:
			f.Set(reflect.ValueOf(journeyT0))
		}
	}
	j := reflect.ValueOf(v.Interface().(journeyHead).journey())
	for i := range j.NumField() {
		if name := jt.Field(i).Name; name != "Trace" && j.Field(i).IsZero() {
			t.Errorf("journey() leaves %s zero", name)
		}
	}
}

// BenchmarkJourneysOfLoyalCustomer: evaluating a record reads the
// profile's journeys. A customer with two years of history has ~100 ended
// journeys, each with its trace: "whole" is that read before, "untraced"
// what evaluation reads now.
func BenchmarkJourneysOfLoyalCustomer(b *testing.B) {
	ctx := context.Background()
	db, err := Open(filepath.Join(b.TempDir(), FileName), Options{Clock: clock.NewFake(journeyT0), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for i := range 100 {
		at := journeyT0.Add(time.Duration(i) * 84 * time.Hour)
		j := Journey{ID: fmt.Sprintf("j%03d", i), Rule: "browse", ProfileID: "loyal", TriggerRecord: fmt.Sprintf("r%d", i), Step: 2, Status: JourneyCompleted, StartedAt: at, UpdatedAt: at}
		for k := range 5 {
			j.Trace = append(j.Trace, TraceEntry{At: at.Add(time.Duration(k) * time.Hour), Step: k, Action: "queued", Detail: "send 0123456789abcdef0123456789abcdef"})
		}
		if err := db.PutJourney(ctx, j); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		read func(context.Context, string) ([]Journey, error)
	}{{"whole", db.JourneysByProfile}, {"untraced", db.JourneysByProfileUntraced}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.read(ctx, "loyal"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
