package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

// SetScores shares group commits with webhook appends: run side by side
// on the same profiles, neither loses the other's writes, and the decode
// memo never brings back a profile from before the last write.
func TestSetScoresAmidAppends(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	const people, orders = 4, 25
	pids := make([]string, people)
	for i := range pids {
		pids[i] = mustAppend(t, db, rec(fmt.Sprintf("first-%d", i), behavior.PageViewed, t0, fmt.Sprintf("p%d@example.com", i))).Profiles[fmt.Sprintf("first-%d", i)]
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*people*orders)
	for i := range people {
		wg.Go(func() {
			for n := range orders {
				r := rec(fmt.Sprintf("o-%d-%d", i, n), behavior.OrderPlaced, t0.Add(time.Duration(n)*time.Minute), fmt.Sprintf("p%d@example.com", i))
				if _, err := db.Append(ctx, Ingest{Records: []behavior.Record{r}}); err != nil {
					errs <- err
				}
			}
		})
		wg.Go(func() {
			for n := range orders {
				if err := db.SetScores(ctx, pids[i], map[string]float64{"n": float64(n)}, "s", t0.Add(time.Duration(n)*time.Second)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, pid := range pids {
		p, err := db.Profile(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		if p.OrdersCount != orders || p.Scores["n"] != orders-1 || p.Segment != "s" || !p.ScoredAt.Equal(t0.Add((orders-1)*time.Second)) {
			t.Errorf("person %d: %d orders, scores %v %q at %s; want %d orders and the last scores", i, p.OrdersCount, p.Scores, p.Segment, p.ScoredAt, orders)
		}
	}
	// One more order after the last scores keeps them.
	mustAppend(t, db, rec("late", behavior.OrderPlaced, t0.Add(time.Hour), "p0@example.com"))
	if p, _ := db.Profile(ctx, pids[0]); p.Scores["n"] != orders-1 || p.OrdersCount != orders+1 {
		t.Errorf("after one more order: %d orders, scores %v", p.OrdersCount, p.Scores)
	}
	if err := db.SetScores(ctx, "no-such-profile", map[string]float64{"n": 1}, "", t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown profile: %v", err)
	}
}
