package journey

import (
	"context"
	"fmt"
	"slices"

	"github.com/nudge-email/nudge/rules"
	"github.com/nudge-email/nudge/storage"
)

// ReloadResult says what a reload changed.
type ReloadResult struct {
	Rules   int      `json:"rules"`
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Ended counts the active journeys of removed rules that were ended.
	Ended int `json:"ended"`
}

// Reload swaps in a new rule set atomically, then ends the active
// journeys of rules the new set no longer has with the reason "rule
// removed". Journeys of rules that stay continue under the new version
// of the rule (a step that no longer exists completes the journey).
func (e *Engine) Reload(ctx context.Context, set *rules.Set) (ReloadResult, error) {
	if set == nil {
		set, _ = rules.NewSet()
	}
	old := e.set.Swap(set)
	res := ReloadResult{Rules: set.Len()}
	for _, r := range set.Rules() {
		if old.Rule(r.ID) == nil {
			res.Added = append(res.Added, r.ID)
		}
	}
	for _, r := range old.Rules() {
		if set.Rule(r.ID) == nil {
			res.Removed = append(res.Removed, r.ID)
		}
	}
	slices.Sort(res.Added)
	slices.Sort(res.Removed)
	for _, id := range res.Removed {
		err := e.store.ScanJourneys(ctx, id, func(j storage.Journey) error {
			if !j.Active() {
				return nil
			}
			ended, err := e.endRemoved(ctx, j.ID)
			if ended {
				res.Ended++
			}
			return err
		})
		if err != nil {
			return res, fmt.Errorf("journey: reload: end journeys of %s: %w", id, err)
		}
	}
	e.opts.Logger.Info("rules reloaded", "rules", res.Rules, "added", len(res.Added), "removed", len(res.Removed), "journeys_ended", res.Ended)
	return res, nil
}

// ReloadFiles loads rule files and reloads them. When any file is broken
// the current set stays in force and the error (a rules.Errors listing
// every problem) is returned: SIGHUP and POST /api/v1/rules/reload both
// use it.
func (e *Engine) ReloadFiles(ctx context.Context, files []string) (ReloadResult, error) {
	set, err := rules.Load(files)
	if err != nil {
		return ReloadResult{Rules: e.Rules().Len()}, err
	}
	return e.Reload(ctx, set)
}

// endRemoved ends one journey of a removed rule, under the profile lock
// and only if it is still active and its rule still absent (a reload
// racing another may have brought it back).
func (e *Engine) endRemoved(ctx context.Context, id string) (bool, error) {
	j, err := e.store.Journey(ctx, id)
	if err != nil {
		return false, err
	}
	unlock := e.lockProfile(j.ProfileID)
	defer unlock()
	if j, err = e.store.Journey(ctx, id); err != nil {
		return false, err
	}
	if !j.Active() || e.set.Load().Rule(j.Rule) != nil {
		return false, nil
	}
	return true, e.end(ctx, &j, storage.JourneyExited, ReasonRuleRemoved, "", e.now())
}

// RuleCounts are the journey counts of one rule, for GET /api/v1/rules
// (sends, conversions and revenue come from the outbox:
// sending.Dispatcher.RuleStats).
type RuleCounts struct {
	Rule       string `json:"rule"`
	Started    int    `json:"started"` // journeys, held-out ones included
	Active     int    `json:"active"`
	Completed  int    `json:"completed"`
	Exited     int    `json:"exited"`
	Suppressed int    `json:"suppressed"`
	HeldOut    int    `json:"held_out"`
}

// Counts returns journey counts for every rule of the set and every rule
// with stored journeys, sorted by rule id.
func Counts(ctx context.Context, store storage.Journeys, set *rules.Set) ([]RuleCounts, error) {
	by := map[string]*RuleCounts{}
	get := func(id string) *RuleCounts {
		c := by[id]
		if c == nil {
			c = &RuleCounts{Rule: id}
			by[id] = c
		}
		return c
	}
	for _, r := range set.Rules() {
		get(r.ID)
	}
	err := store.ScanJourneys(ctx, "", func(j storage.Journey) error {
		c := get(j.Rule)
		c.Started++
		switch j.Status {
		case storage.JourneyWaiting:
			c.Active++
		case storage.JourneyCompleted:
			c.Completed++
		case storage.JourneyExited:
			c.Exited++
		case storage.JourneySuppressed:
			c.Suppressed++
		case storage.JourneyHeldOut:
			c.HeldOut++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("journey: counts: %w", err)
	}
	out := make([]RuleCounts, 0, len(by))
	for _, c := range by {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b RuleCounts) int {
		if a.Rule < b.Rule {
			return -1
		}
		if a.Rule > b.Rule {
			return 1
		}
		return 0
	})
	return out, nil
}
