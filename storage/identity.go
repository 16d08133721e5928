package storage

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	json "github.com/goccy/go-json"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
)

// maxAliasHops bounds alias chains (a merged into b, b later into c …), so
// a corrupt cycle cannot hang a lookup.
const maxAliasHops = 64

// resolveProfileTx follows aliases from id to a live profile.
func resolveProfileTx(tx *bolt.Tx, id string) (string, bool) {
	profiles := tx.Bucket(bucketProfiles)
	var aliases *bolt.Bucket // opened only when needed: most ids are live
	for range maxAliasHops {
		if id == "" {
			return "", false
		}
		if profiles.Get([]byte(id)) != nil {
			return id, true
		}
		if aliases == nil {
			aliases = tx.Bucket(bucketAliases)
		}
		next := aliases.Get([]byte(id))
		if next == nil {
			return "", false
		}
		id = string(next)
	}
	return "", false
}

// newProfileID makes an id that sorts in creation order (a per-store
// sequence) followed by random bytes, so ids reveal nothing about the
// person and "the profile created first" is simply the smallest id.
func newProfileID(tx *bolt.Tx) (string, error) {
	seq, err := tx.Bucket(bucketProfiles).NextSequence()
	if err != nil {
		return "", fmt.Errorf("profile sequence: %w", err)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], seq)
	if _, err := rand.Read(b[8:]); err != nil {
		return "", fmt.Errorf("profile id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// hasIdentity reports whether ids holds id (by key).
func hasIdentity(ids []behavior.Identity, id behavior.Identity) bool {
	k := id.Key()
	for _, x := range ids {
		if identityKeyIs(x, k) {
			return true
		}
	}
	return false
}

// identityKeyIs reports whether x.Key() == k without building x's key: a
// profile's identities grow with every order (each brings its order's
// anonymous id), and Append checks each of a record's identities against
// all of them.
func identityKeyIs(x behavior.Identity, k string) bool {
	n := len(x.Type) + 1 + len(x.Value)
	if x.Namespace != "" {
		n += len(x.Namespace) + 1
	}
	if len(k) != n || !strings.HasPrefix(k, x.Type) || k[len(x.Type)] != ':' || !strings.HasSuffix(k, x.Value) {
		return false
	}
	if x.Namespace == "" {
		return true
	}
	mid := k[len(x.Type)+1 : len(k)-len(x.Value)]
	return len(mid) == len(x.Namespace)+1 && strings.HasPrefix(mid, x.Namespace) && mid[len(x.Namespace)] == ':'
}

// applyToProfile resolves a record's identities to one profile — creating
// it, or merging every profile they name into the oldest — then attaches
// new identities and applies the record's facts. It returns the profile id.
// A plan (planProfile) that still holds is written as it is.
func (st *appendState) applyToProfile(r behavior.Record, ids []behavior.Identity, plan *profilePlan) (string, error) {
	tx := st.tx
	if plan != nil && planUsable(tx, plan) {
		st.loaded = loadedProfile{}
		if err := tx.Bucket(bucketProfiles).Put([]byte(plan.pid), plan.after); err != nil {
			return "", fmt.Errorf("put profile: %w", err)
		}
		// As below: after and p are never modified, so the memo may
		// keep them (and this run may be repeated: it puts the same).
		st.db.profiles.put(plan.pid, plan.after, plan.p)
		return plan.pid, nil
	}
	idb := tx.Bucket(bucketIdentities)
	keys := make([][]byte, len(ids))
	var found []string
	owner := map[string]string{} // identity key → its profile, for identities already known
	for i, id := range ids {
		keys[i] = []byte(id.Key())
		v := idb.Get(keys[i])
		if v == nil {
			continue
		}
		if pid, ok := resolveProfileTx(tx, string(v)); ok {
			owner[string(keys[i])] = pid
			if !slices.Contains(found, pid) {
				found = append(found, pid)
			}
		}
	}
	st.loaded = loadedProfile{}
	found, kept, err := st.mergeable(r, ids, found, owner)
	if err != nil {
		return "", err
	}
	var p Profile
	if len(found) == 1 && st.loaded.id == found[0] {
		// mergeable has just decoded it (a private copy) and nothing has
		// written profiles since.
		p = st.loaded.p
	} else if len(found) == 0 {
		id, err := newProfileID(tx)
		if err != nil {
			return "", err
		}
		p = Profile{ID: id}
	} else {
		slices.Sort(found)
		for _, loser := range found[1:] {
			if err := mergeProfilesTx(tx, found[0], loser, st.now); err != nil {
				return "", fmt.Errorf("merge %s into %s: %w", loser, found[0], err)
			}
			st.merged[loser] = found[0]
		}
		raw := tx.Bucket(bucketProfiles).Get([]byte(found[0]))
		if raw == nil {
			return "", fmt.Errorf("profile %s vanished", found[0])
		}
		var ok bool
		if p, ok = st.db.profiles.get(found[0], raw); !ok {
			if err := json.Unmarshal(raw, &p); err != nil {
				return "", fmt.Errorf("decode %s: %w", found[0], err)
			}
		}
	}
	st.loaded = loadedProfile{}
	for i, id := range ids {
		key := keys[i]
		if kept[string(key)] {
			continue // it belongs to another person's profile; see mergeable
		}
		if !bytes.Equal(idb.Get(key), []byte(p.ID)) {
			if err := idb.Put(key, []byte(p.ID)); err != nil {
				return "", fmt.Errorf("put identity: %w", err)
			}
		}
		if !hasIdentity(p.Identities, id) {
			p.Identities = append(p.Identities, id)
		}
	}
	applyFacts(&p, r, st.now)
	if err := applyRecordSuppression(tx, r, &p); err != nil {
		return "", err
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode profile %s: %w", p.ID, err)
	}
	if err := tx.Bucket(bucketProfiles).Put([]byte(p.ID), raw); err != nil {
		return "", fmt.Errorf("put profile: %w", err)
	}
	// raw stays untouched (bbolt holds it until commit), and p is not
	// used again: the cache may keep both.
	st.db.profiles.put(p.ID, raw, p)
	return p.ID, nil
}

// mergeable narrows the profiles a record's identities name to those that
// may become one, so two different email addresses never end up in one
// profile: a shared device id, a reused cart token or a household's Stripe
// customer must not make one person's cart reminder go to another. With
// an email on the record, the profiles that may merge are the one holding
// that email and those holding no email at all; without one, the profile
// of the record's strongest identity (ids come strongest first) and those
// whose emails it already has, or that have none. Identities owned by a
// profile left out stay where they are (kept).
func (st *appendState) mergeable(r behavior.Record, ids []behavior.Identity, found []string, owner map[string]string) ([]string, map[string]bool, error) {
	if len(found) == 0 {
		return found, nil, nil
	}
	emails := map[string][]string{}
	for _, pid := range found {
		es, err := st.profileEmails(pid)
		if err != nil {
			return nil, nil, err
		}
		emails[pid] = es
	}
	var want []string // the email set profiles must agree with
	if e := behavior.NormalizeEmail(r.Email); e != "" {
		want = []string{e}
	} else {
		for _, id := range ids {
			if pid := owner[id.Key()]; pid != "" {
				want = emails[pid]
				break
			}
		}
	}
	ok := func(pid string) bool {
		for _, e := range emails[pid] {
			if !slices.Contains(want, e) {
				return false
			}
		}
		return true
	}
	var keep []string
	for _, pid := range found {
		if ok(pid) {
			keep = append(keep, pid)
		}
	}
	if len(keep) == len(found) {
		return found, nil, nil
	}
	kept := map[string]bool{}
	for key, pid := range owner {
		if !slices.Contains(keep, pid) {
			kept[key] = true
		}
	}
	return keep, kept, nil
}

// profileEmails lists the email addresses of a stored profile.
func (st *appendState) profileEmails(pid string) ([]string, error) {
	raw := st.tx.Bucket(bucketProfiles).Get([]byte(pid))
	if raw == nil {
		return nil, fmt.Errorf("profile %s vanished", pid)
	}
	p, ok := st.db.profiles.get(pid, raw)
	if !ok {
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("decode %s: %w", pid, err)
		}
	}
	st.loaded = loadedProfile{id: pid, p: p}
	var out []string
	for _, id := range p.Identities {
		if id.Type == behavior.IdentEmail {
			out = append(out, id.Value)
		}
	}
	return out, nil
}

// mergeProfilesTx folds profile lid into sid: identities, records,
// product views, journeys, sends and decisions move to sid, facts are
// combined, lid is deleted and left as an alias so old ids keep resolving.
// Nothing of lid's history is dropped.
func mergeProfilesTx(tx *bolt.Tx, sid, lid string, now time.Time) error {
	profiles := tx.Bucket(bucketProfiles)
	var s, l Profile
	for _, x := range []struct {
		id string
		p  *Profile
	}{{sid, &s}, {lid, &l}} {
		ok, err := getJSON(profiles, []byte(x.id), x.p)
		if err != nil {
			return fmt.Errorf("load profile: %w", err)
		}
		if !ok {
			return fmt.Errorf("load profile %s: %w", x.id, ErrNotFound)
		}
	}

	idb := tx.Bucket(bucketIdentities)
	for _, id := range l.Identities {
		if err := idb.Put([]byte(id.Key()), []byte(sid)); err != nil {
			return fmt.Errorf("move identity: %w", err)
		}
		if !hasIdentity(s.Identities, id) {
			s.Identities = append(s.Identities, id)
		}
	}

	// Records: re-key the profile index and the envelope's profile, and
	// note the products lid viewed so their product_views entries move.
	products := map[string]bool{}
	records := tx.Bucket(bucketRecords)
	err := rekeyProfileIndex(tx, bucketRecByProfile, lid, sid, func(rest []byte) error {
		if len(rest) <= 8 {
			return nil
		}
		sr, ok, err := getRecordTx(tx, rest[8:])
		if err != nil || !ok {
			return err
		}
		sr.P = sid
		if viewKind(sr.R.Kind) {
			for _, p := range behavior.ProductIDs(sr.R.Items) {
				products[p] = true
			}
		}
		return putJSON(records, []byte(sr.R.ID), sr)
	})
	if err != nil {
		return fmt.Errorf("move records: %w", err)
	}
	pv := tx.Bucket(bucketProductViews)
	for prod := range products {
		lk := join([]byte(prod), []byte(lid))
		lv := pv.Get(lk)
		if lv == nil {
			continue
		}
		last := binary.BigEndian.Uint64(lv)
		sk := join([]byte(prod), []byte(sid))
		if sv := pv.Get(sk); sv == nil || binary.BigEndian.Uint64(sv) < last {
			if err := pv.Put(sk, u64(last)); err != nil {
				return fmt.Errorf("move product view: %w", err)
			}
		}
		if err := pv.Delete(lk); err != nil {
			return fmt.Errorf("move product view: %w", err)
		}
	}

	journeys := tx.Bucket(bucketJourneys)
	err = rekeyProfileIndex(tx, bucketJourneysByProfile, lid, sid, func(rest []byte) error {
		return setProfileIDJSON(journeys, rest, sid)
	})
	if err != nil {
		return fmt.Errorf("move journeys: %w", err)
	}
	if err := endDuplicateJourneysTx(tx, sid, now); err != nil {
		return fmt.Errorf("merge journeys: %w", err)
	}
	sends := tx.Bucket(bucketSends)
	err = rekeyProfileIndex(tx, bucketSendsByProfile, lid, sid, func(rest []byte) error {
		for _, id := range idsAfterTime(rest) {
			if sends.Get(id) != nil {
				return setProfileIDJSON(sends, id, sid)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("move sends: %w", err)
	}
	if err := rekeyProfileIndex(tx, bucketDecisions, lid, sid, nil); err != nil {
		return fmt.Errorf("move decisions: %w", err)
	}

	combineProfiles(&s, &l)
	s.UpdatedAt = now
	if err := putJSON(profiles, []byte(sid), s); err != nil {
		return fmt.Errorf("put survivor: %w", err)
	}
	if err := profiles.Delete([]byte(lid)); err != nil {
		return fmt.Errorf("delete merged: %w", err)
	}
	if err := tx.Bucket(bucketAliases).Put([]byte(lid), []byte(sid)); err != nil {
		return fmt.Errorf("put alias: %w", err)
	}
	return nil
}

// combineProfiles folds l's facts into s, which was created first: s keeps
// its primary email and person fields where it has them; counts and money
// add up; consent is whichever was given last.
func combineProfiles(s, l *Profile) {
	if s.Email == "" {
		s.Email = l.Email
	}
	fill := func(dst *string, src string) {
		if *dst == "" {
			*dst = src
		}
	}
	fill(&s.FirstName, l.FirstName)
	fill(&s.LastName, l.LastName)
	fill(&s.Phone, l.Phone)
	fill(&s.Timezone, l.Timezone)
	if s.Country == "" {
		s.Country, s.Region = l.Country, l.Region
	}
	fill(&s.Locale, l.Locale)
	fill(&s.Currency, l.Currency)
	if l.Consent.State != "" && (s.Consent.State == "" || l.Consent.At.After(s.Consent.At)) {
		s.Consent = l.Consent
	}
	if !l.FirstSeen.IsZero() && (s.FirstSeen.IsZero() || l.FirstSeen.Before(s.FirstSeen)) {
		s.FirstSeen = l.FirstSeen
	}
	if l.LastSeen.After(s.LastSeen) {
		s.LastSeen = l.LastSeen
	}
	for k, n := range l.Counts {
		if s.Counts == nil {
			s.Counts = map[behavior.Kind]int{}
		}
		s.Counts[k] += n
	}
	for k, t := range l.LastAt {
		if s.LastAt == nil {
			s.LastAt = map[behavior.Kind]time.Time{}
		}
		if t.After(s.LastAt[k]) {
			s.LastAt[k] = t
		}
	}
	s.OrdersCount += l.OrdersCount
	s.TotalSpent += l.TotalSpent
	if len(s.Scores) == 0 && len(l.Scores) > 0 {
		s.Scores, s.Segment, s.ScoredAt = l.Scores, l.Segment, l.ScoredAt
	}
}

// rekeyProfileIndex moves every entry of a "profile id | 0x00 | rest" index
// from one profile to another, calling fix(rest) for each so the value the
// entry points at can be updated too.
func rekeyProfileIndex(tx *bolt.Tx, bucket []byte, from, to string, fix func(rest []byte) error) error {
	b := tx.Bucket(bucket)
	prefix := profilePrefix(from)
	type kv struct{ k, v []byte }
	var moved []kv
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		moved = append(moved, kv{bytes.Clone(k), bytes.Clone(v)})
	}
	toPrefix := profilePrefix(to)
	for _, e := range moved {
		rest := e.k[len(prefix):]
		if err := b.Put(append(bytes.Clone(toPrefix), rest...), e.v); err != nil {
			return err
		}
		if err := b.Delete(e.k); err != nil {
			return err
		}
		if fix != nil {
			if err := fix(rest); err != nil {
				return err
			}
		}
	}
	return nil
}

// idsAfterTime returns the candidate ids in the tail "u64 ns | id" of an
// index key; an index written with join() has a 0x00 before the id, so
// both readings are offered.
func idsAfterTime(rest []byte) [][]byte {
	if len(rest) <= 8 {
		return nil
	}
	out := [][]byte{rest[8:]}
	if rest[8] == 0 && len(rest) > 9 {
		out = append(out, rest[9:])
	}
	return out
}

// setProfileIDJSON rewrites the "profile_id" field of a JSON value owned by
// another part of the store, leaving every other field as it was.
func setProfileIDJSON(b *bolt.Bucket, key []byte, pid string) error {
	raw := b.Get(key)
	if raw == nil {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	if _, ok := m["profile_id"]; !ok {
		return nil
	}
	m["profile_id"], _ = json.Marshal(pid)
	return putJSON(b, bytes.Clone(key), m)
}

// ReasonMergedDuplicate begins the reason of a journey ended because a
// profile merge gave its person two active journeys of one rule.
const ReasonMergedDuplicate = "merged: duplicate of journey "

// endDuplicateJourneysTx keeps one active journey per rule on a profile
// that has just absorbed another: the same person browsing anonymously
// and then signed in started the rule twice, once per profile, and would
// otherwise get each step twice. The journey that has run more steps
// stays (then the earlier started, then the smaller id); the others end
// as exited. Their pending step jobs find them ended and do nothing.
func endDuplicateJourneysTx(tx *bolt.Tx, pid string, now time.Time) error {
	b := tx.Bucket(bucketJourneys)
	all, err := journeysOfProfileTx(tx, pid)
	if err != nil {
		return err
	}
	var active []Journey
	for _, j := range all {
		if j.Active() {
			active = append(active, j)
		}
	}
	better := func(a, b Journey) bool {
		if a.Step != b.Step {
			return a.Step > b.Step
		}
		if !a.StartedAt.Equal(b.StartedAt) {
			return a.StartedAt.Before(b.StartedAt)
		}
		return a.ID < b.ID
	}
	keep := map[string]Journey{}
	for _, j := range active {
		if k, ok := keep[j.Rule]; !ok || better(j, k) {
			keep[j.Rule] = j
		}
	}
	for _, j := range active {
		k := keep[j.Rule]
		if j.ID == k.ID {
			continue
		}
		j.Status = JourneyExited
		j.Reason = ReasonMergedDuplicate + k.ID
		j.DueAt = time.Time{}
		j.UpdatedAt = now
		j.Trace = append(j.Trace, TraceEntry{At: now, Step: j.Step, Action: "exited", Detail: j.Reason + " (two profiles of one person merged)"})
		// Only the status changed: no index entry moves.
		if err := putJSON(b, []byte(j.ID), j); err != nil {
			return err
		}
	}
	return nil
}
