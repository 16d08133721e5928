package storage

import (
	"bytes"
	"time"

	json "github.com/goccy/go-json"
	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
)

// profilePlan is a record's profile update worked out before the group
// commit, from a read of the store: the commonest update — a record of a
// known person, every identity already theirs — is a decode, a few map
// writes and an encode, and doing that inside the single writer made it a
// third of the writer's time per email_sent record (bench/sched). The
// writer takes the plan only if nothing it was made from has changed since
// (planUsable), and otherwise works the update out itself, as before.
type profilePlan struct {
	pid    string
	keys   [][]byte // the record's identity keys, each held by pid
	before []byte   // the stored profile the plan started from
	after  []byte   // the profile with the record applied, encoded
	p      Profile  // after, decoded: for the profile memo
}

// planProfiles plans the profile update of every record of ps that
// qualifies (see planProfile), in one read transaction. Planning is an
// optimisation: a failed read leaves the plans out.
//
// FinishSends plans (a batch of email_sent records, one per person);
// Append does not: webhooks of one person come in bursts (an order, its
// payment, its fulfilment; bench/run.sh posts one customer's order), so
// plans made side by side go stale as soon as the first is written, and
// the ingest ratio fell from 0.74–0.78 to 0.70–0.72 with them.
func (db *DB) planProfiles(ps []preparedIngest) {
	n := 0
	for _, p := range ps {
		n += len(p.records)
	}
	if n == 0 {
		return
	}
	now := db.now()
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		idb, profiles := tx.Bucket(bucketIdentities), tx.Bucket(bucketProfiles)
		if idb == nil || profiles == nil {
			return nil
		}
		for k := range ps {
			p := &ps[k]
			p.plans = make([]*profilePlan, len(p.records))
			for i, r := range p.records {
				p.plans[i] = db.planProfile(idb, profiles, r, now)
			}
		}
		return nil
	})
}

// planProfile is applyToProfile's result for r when r's identities are all
// held by one stored profile (no alias to follow, no merge, no identity to
// attach elsewhere), the profile's email addresses let it take r (see
// mergeable), and r changes no suppression; nil otherwise.
func (db *DB) planProfile(idb, profiles *bolt.Bucket, r behavior.Record, now time.Time) *profilePlan {
	if _, ok := r.Suppresses(); ok || r.Kind == behavior.Resubscribed || r.Consent.Reaffirms(r.Kind) {
		return nil // applyRecordSuppression would write
	}
	ids := r.Identities()
	if len(ids) == 0 {
		return nil
	}
	pl := &profilePlan{keys: make([][]byte, len(ids))}
	for i, id := range ids {
		pl.keys[i] = []byte(id.Key())
		v := idb.Get(pl.keys[i])
		switch {
		case v == nil:
			return nil
		case i == 0:
			pl.pid = string(v)
		case string(v) != pl.pid:
			return nil
		}
	}
	raw := profiles.Get([]byte(pl.pid))
	if raw == nil {
		return nil // an alias: the writer follows it
	}
	p, ok := db.profiles.get(pl.pid, raw)
	if !ok {
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil
		}
	}
	if e := r.Email; e != "" {
		for _, id := range p.Identities {
			if id.Type == behavior.IdentEmail && id.Value != e {
				return nil // another person's address: mergeable decides
			}
		}
	}
	for _, id := range ids {
		if !hasIdentity(p.Identities, id) {
			p.Identities = append(p.Identities, id)
		}
	}
	applyFacts(&p, r, now)
	after, err := json.Marshal(p)
	if err != nil {
		return nil
	}
	pl.before, pl.after, pl.p = bytes.Clone(raw), after, p
	return pl
}

// planUsable reports whether pl still holds in tx: each identity key still
// names pl.pid and the profile's stored bytes are those it started from.
// Then applying it writes exactly what applyToProfile would have.
func planUsable(tx *bolt.Tx, pl *profilePlan) bool {
	idb := tx.Bucket(bucketIdentities)
	for _, k := range pl.keys {
		if string(idb.Get(k)) != pl.pid {
			return false
		}
	}
	return bytes.Equal(tx.Bucket(bucketProfiles).Get([]byte(pl.pid)), pl.before)
}
