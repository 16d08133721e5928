package storage

import (
	"bytes"
	"context"
	"fmt"
	json "github.com/goccy/go-json"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MaxDecisionsPerProfile caps the explain decisions kept per profile; the
// oldest go first, so a busy shopper's history cannot grow without bound.
const MaxDecisionsPerProfile = 500

// PutJourney writes the journey, keeps both indexes in step and enqueues
// jobs, all in one transaction: a step job exists exactly when the journey
// that expects it is stored.
func (db *DB) PutJourney(ctx context.Context, j Journey, jobs ...JobSpec) error {
	if j.ID == "" || j.Rule == "" || j.ProfileID == "" {
		return fmt.Errorf("storage: put journey %q: %w: id, rule and profile are required", j.ID, ErrInvalid)
	}
	raw, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("storage: put journey %s: %w", j.ID, err)
	}
	err = db.batch(ctx, func(tx *bolt.Tx) error { return db.putJourneyTx(tx, j, raw, jobs) })
	if err != nil {
		return fmt.Errorf("storage: put journey %s: %w", j.ID, err)
	}
	return nil
}

// putJourneyTx is PutJourney inside a caller's transaction; raw is j
// encoded, outside the serial group commit.
func (db *DB) putJourneyTx(tx *bolt.Tx, j Journey, raw []byte, jobs []JobSpec) error {
	b := appendBucket(tx, bucketJourneys)
	byProfile := tx.Bucket(bucketJourneysByProfile)
	byRule := tx.Bucket(bucketJourneysByRule)
	profileKey, ruleKey := join([]byte(j.ProfileID), []byte(j.ID)), join([]byte(j.Rule), []byte(j.ID))
	if byProfile.Get(profileKey) != nil && byRule.Get(ruleKey) != nil {
		// Indexed under these already, so the stored journey has this
		// profile and rule (each journey has one entry in each index):
		// the usual update, a step moving on, needs no decoding of the
		// stored journey, whose trace grows with every step.
		if err := b.Put([]byte(j.ID), raw); err != nil {
			return err
		}
		_, err := db.enqueueJobsTx(tx, jobs)
		return err
	}
	// Only the indexed fields of the stored journey matter here; its
	// trace is not decoded.
	var old struct {
		ID        string `json:"id"`
		Rule      string `json:"rule"`
		ProfileID string `json:"profile_id"`
	}
	found, err := getJSON(b, []byte(j.ID), &old)
	if err != nil {
		return err
	}
	if found && old.ProfileID != j.ProfileID {
		if err := byProfile.Delete(join([]byte(old.ProfileID), []byte(old.ID))); err != nil {
			return err
		}
	}
	if found && old.Rule != j.Rule {
		if err := byRule.Delete(join([]byte(old.Rule), []byte(old.ID))); err != nil {
			return err
		}
	}
	if err := b.Put([]byte(j.ID), raw); err != nil {
		return err
	}
	// Re-putting an unchanged index key would still rewrite its page (a
	// random leaf per journey update), so only changed entries are put.
	if !found || old.ProfileID != j.ProfileID {
		if err := byProfile.Put(profileKey, nil); err != nil {
			return err
		}
	}
	if !found || old.Rule != j.Rule {
		if err := byRule.Put(ruleKey, nil); err != nil {
			return err
		}
	}
	_, err = db.enqueueJobsTx(tx, jobs)
	return err
}

// Journey returns one journey.
func (db *DB) Journey(ctx context.Context, id string) (Journey, error) {
	var j Journey
	err := db.view(ctx, func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketJourneys), []byte(id), &j)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return Journey{}, fmt.Errorf("storage: journey %s: %w", id, err)
	}
	return j, nil
}

// JourneysByProfile returns a profile's journeys, oldest first.
func (db *DB) JourneysByProfile(ctx context.Context, profileID string) ([]Journey, error) {
	var out []Journey
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = journeysOfProfileTx(tx, profileID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: journeys of %s: %w", profileID, err)
	}
	sortJourneys(out)
	return out, nil
}

// sortJourneys orders journeys oldest first (ties by id).
func sortJourneys(out []Journey) {
	sort.SliceStable(out, func(a, b int) bool {
		if !out[a].StartedAt.Equal(out[b].StartedAt) {
			return out[a].StartedAt.Before(out[b].StartedAt)
		}
		return out[a].ID < out[b].ID
	})
}

// ScanJourneys calls fn for every journey of a rule ("" = all rules). The
// journeys are read in one transaction and fn runs after it ends, so fn
// may write to the store.
func (db *DB) ScanJourneys(ctx context.Context, rule string, fn func(Journey) error) error {
	var all []Journey
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJourneys)
		if rule == "" {
			return b.ForEach(func(_, v []byte) error {
				var j Journey
				if err := json.Unmarshal(v, &j); err != nil {
					return fmt.Errorf("decode journey: %w", err)
				}
				all = append(all, j)
				return nil
			})
		}
		prefix := join([]byte(rule), nil)
		c := tx.Bucket(bucketJourneysByRule).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			var j Journey
			ok, err := getJSON(b, k[len(prefix):], &j)
			if err != nil {
				return err
			}
			if ok {
				all = append(all, j)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: scan journeys: %w", err)
	}
	for _, j := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(j); err != nil {
			return err
		}
	}
	return nil
}

// AppendDecision adds an explain entry; see AppendDecisions.
func (db *DB) AppendDecision(ctx context.Context, profileID string, d Decision) error {
	return db.AppendDecisions(ctx, profileID, d)
}

// AppendDecisions adds the explain entries of one evaluation in one
// transaction (an evaluation against many rules makes one per rule). An
// entry equal to one already held for the same time (a replayed
// evaluation after a crash) is not added twice; beyond
// MaxDecisionsPerProfile the oldest are dropped.
func (db *DB) AppendDecisions(ctx context.Context, profileID string, ds ...Decision) error {
	if profileID == "" {
		return fmt.Errorf("storage: append decision: %w: no profile", ErrInvalid)
	}
	if len(ds) == 0 {
		return nil
	}
	err := db.batch(ctx, func(tx *bolt.Tx) error { return appendDecisionsTx(tx, profileID, ds) })
	if err != nil {
		return fmt.Errorf("storage: append decisions for %s: %w", profileID, err)
	}
	return nil
}

// appendDecisionsTx is AppendDecisions inside a write transaction.
func appendDecisionsTx(tx *bolt.Tx, profileID string, ds []Decision) error {
	b := tx.Bucket(bucketDecisions)
	// What is held at each time the batch touches, read once: one
	// evaluation stamps all its decisions with the record's time.
	held := map[time.Time]map[string]bool{}
	added := false
	for _, d := range ds {
		d.At = d.At.UTC()
		seen, ok := held[d.At]
		if !ok {
			var err error
			if seen, err = decisionsAt(b, profileID, d.At); err != nil {
				return err
			}
			held[d.At] = seen
		}
		key := decisionIdentity(d)
		if seen[key] {
			continue
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		// Same layout the merge code re-keys: profile | ns | seq, 0x00-joined.
		if err := putJSON(b, join([]byte(profileID), timeKey(d.At), u64(seq)), d); err != nil {
			return err
		}
		seen[key] = true
		added = true
	}
	if !added {
		return nil
	}
	prefix := join([]byte(profileID), nil)
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for i := 0; i < len(keys)-MaxDecisionsPerProfile; i++ {
		if err := b.Delete(keys[i]); err != nil {
			return err
		}
	}
	return nil
}

// decisionIdentity is what makes two decisions the same.
func decisionIdentity(d Decision) string {
	return fmt.Sprintf("%s\x00%s\x00%t\x00%s\x00%s", d.Rule, d.RecordID, d.Started, d.JourneyID, d.Reason)
}

// decisionsAt returns the identities of a profile's decisions at one time.
func decisionsAt(b *bolt.Bucket, profileID string, at time.Time) (map[string]bool, error) {
	out := map[string]bool{}
	prefix := join([]byte(profileID), timeKey(at), nil)
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var d Decision
		if err := json.Unmarshal(v, &d); err != nil {
			return nil, fmt.Errorf("decode decision: %w", err)
		}
		out[decisionIdentity(d)] = true
	}
	return out, nil
}

// Decisions returns a profile's decisions, oldest first.
func (db *DB) Decisions(ctx context.Context, profileID string) ([]Decision, error) {
	var out []Decision
	err := db.view(ctx, func(tx *bolt.Tx) error {
		out = out[:0]
		prefix := join([]byte(profileID), nil)
		c := tx.Bucket(bucketDecisions).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var d Decision
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decode decision: %w", err)
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: decisions of %s: %w", profileID, err)
	}
	return out, nil
}

// journeysOfProfileTx reads a profile's journeys through its index, in
// index order.
// JourneysByProfileUntraced is JourneysByProfile where the journeys that
// have ended come without their trace: what evaluating a record reads
// (the active journeys whole, as it may end them; the ended ones only to
// see when a rule last ran). Decoding every ended journey's trace, its
// times above all, was most of that read for a customer with a long
// history (BenchmarkJourneysOfLoyalCustomer).
func (db *DB) JourneysByProfileUntraced(ctx context.Context, profileID string) ([]Journey, error) {
	var out []Journey
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = readJourneysOfProfileTx(tx, profileID, true)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: journeys of %s: %w", profileID, err)
	}
	sortJourneys(out)
	return out, nil
}

// journeyHead is a stored Journey read without its trace.
// TestJourneyHeadMatchesJourney keeps its fields those of Journey.
type journeyHead struct {
	ID            string    `json:"id"`
	Rule          string    `json:"rule"`
	ProfileID     string    `json:"profile_id"`
	TriggerRecord string    `json:"trigger_record"`
	Step          int       `json:"step"`
	Status        string    `json:"status"`
	Reason        string    `json:"reason,omitempty"`
	Holdout       bool      `json:"holdout,omitempty"`
	StartedAt     time.Time `json:"started_at"`
	DueAt         time.Time `json:"due_at,omitzero"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// journey is h as a Journey without trace.
func (h journeyHead) journey() Journey {
	return Journey{
		ID: h.ID, Rule: h.Rule, ProfileID: h.ProfileID, TriggerRecord: h.TriggerRecord, Step: h.Step,
		Status: h.Status, Reason: h.Reason, Holdout: h.Holdout, StartedAt: h.StartedAt, DueAt: h.DueAt, UpdatedAt: h.UpdatedAt,
	}
}

func journeysOfProfileTx(tx *bolt.Tx, profileID string) ([]Journey, error) {
	return readJourneysOfProfileTx(tx, profileID, false)
}

// readJourneysOfProfileTx is journeysOfProfileTx; with untraced, the
// journeys that have ended are read without their trace.
func readJourneysOfProfileTx(tx *bolt.Tx, profileID string, untraced bool) ([]Journey, error) {
	var out []Journey
	b := tx.Bucket(bucketJourneys)
	prefix := join([]byte(profileID), nil)
	c := tx.Bucket(bucketJourneysByProfile).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id := k[len(prefix):]
		raw := b.Get(id)
		if raw == nil {
			continue
		}
		if untraced {
			var h journeyHead
			if err := json.Unmarshal(raw, &h); err != nil {
				return nil, fmt.Errorf("decode %s: %w", id, err)
			}
			if h.Status != JourneyWaiting {
				out = append(out, h.journey())
				continue
			}
		}
		var j Journey
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("decode %s: %w", id, err)
		}
		out = append(out, j)
	}
	return out, nil
}
