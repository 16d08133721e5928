package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
)

// bucketScrub is a temporary bucket Forget fills and drops to overwrite
// freed pages; it never survives a Forget.
var bucketScrub = []byte("scrub")

// Forget erases a person everywhere; see Store.Forget.
//
// bbolt never overwrites data in place: a delete writes new pages and puts
// the old ones, still holding the old bytes, on the freelist. So after the
// erase commits, Forget fills every free page with zeros (see scrubFreePages)
// so the address does not survive in the file. That is best effort: pages
// still pinned by a read transaction open at that moment are not free yet
// and keep their bytes until a later write reuses them.
func (db *DB) Forget(ctx context.Context, profileID string) error {
	return db.forget(ctx, profileID, scrubChunkPages)
}

// forget is Forget with the scrub's pages per transaction as a parameter,
// so tests can exercise a multi-transaction scrub on a small file.
func (db *DB) forget(ctx context.Context, profileID string, scrubChunk int) error {
	var emails []string
	err := db.view(ctx, func(tx *bolt.Tx) error {
		p, err := getProfileTx(tx, profileID)
		emails = profileEmails(&p)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: forget %q: %w", profileID, err)
	}
	// Raw deliveries are found through the person's records, except those
	// stored without any (ignored topics): find those by content, outside
	// the write transaction, as it reads every delivery.
	orphans, err := db.deliveriesMentioning(ctx, emails)
	if err != nil {
		return fmt.Errorf("storage: forget %q: %w", profileID, err)
	}
	var forgotten string
	err = db.update(ctx, func(tx *bolt.Tx) error {
		p, err := getProfileTx(tx, profileID)
		if err != nil {
			return err
		}
		forgotten = p.ID
		return db.forgetTx(tx, profileID, orphans)
	})
	if err != nil {
		return fmt.Errorf("storage: forget %q: %w", profileID, err)
	}
	db.profiles.drop(forgotten)
	if err := db.scrubFreePages(scrubChunk); err != nil {
		// The person is gone from every index and bucket; only freed pages
		// may still hold old bytes until reused.
		db.opts.Logger.Warn("storage: forget: scrubbing freed pages failed", "error", err)
	}
	return nil
}

// deliveriesMentioning returns the ids of raw deliveries whose body
// contains one of the addresses, compared case-insensitively.
func (db *DB) deliveriesMentioning(ctx context.Context, emails []string) ([]string, error) {
	if len(emails) == 0 {
		return nil, nil
	}
	var ids []string
	err := pageScan(ctx, db, bucketDeliveries, nil, nil,
		func(tx *bolt.Tx, k, v []byte) (string, bool, error) {
			ref, err := parseDelivery(v)
			if err != nil {
				return "", false, fmt.Errorf("delivery %s: %w", k, err)
			}
			body, _, err := ref.body(tx)
			if err != nil {
				return "", false, fmt.Errorf("delivery %s: %w", k, err)
			}
			// As a whole address, JSON escapes undone (bodyMentions, as
			// the export matches): a substring match would erase
			// joann@x.com's deliveries when forgetting ann@x.com.
			if bodyMentions(body, emails) {
				return string(k), true, nil
			}
			return "", false, nil
		},
		func(id string) error { ids = append(ids, id); return nil })
	return ids, err
}

// forgetTx erases one person inside a write transaction; orphanDeliveries
// are raw deliveries found by content beforehand.
func (db *DB) forgetTx(tx *bolt.Tx, profileID string, orphanDeliveries []string) error {
	p, err := getProfileTx(tx, profileID)
	if err != nil {
		return err
	}
	pid := p.ID
	prefix := profilePrefix(pid)

	// Records, their indexes and raw deliveries; note the products they
	// name so the product_views entries go too.
	products := map[string]bool{}
	byProfile := tx.Bucket(bucketRecByProfile)
	for _, k := range keysWithPrefix(byProfile, prefix) {
		if len(k) > len(prefix)+8 {
			id := k[len(prefix)+8:]
			sr, ok, err := getRecordTx(tx, id)
			if err != nil {
				return err
			}
			if ok {
				for _, prod := range behavior.ProductIDs(sr.R.Items) {
					products[prod] = true
				}
				if err := deleteRecordTx(tx, sr); err != nil {
					return err
				}
			}
		}
		if err := byProfile.Delete(k); err != nil {
			return err
		}
	}
	for _, id := range orphanDeliveries {
		if err := deleteDeliveryTx(tx, []byte(id)); err != nil {
			return err
		}
	}
	pv := tx.Bucket(bucketProductViews)
	for prod := range products {
		if err := pv.Delete(join([]byte(prod), []byte(pid))); err != nil {
			return err
		}
	}

	decisions := tx.Bucket(bucketDecisions)
	for _, k := range keysWithPrefix(decisions, prefix) {
		if err := decisions.Delete(k); err != nil {
			return err
		}
	}

	if err := db.forgetJourneysTx(tx, pid); err != nil {
		return fmt.Errorf("journeys: %w", err)
	}
	if err := db.forgetSendsTx(tx, pid); err != nil {
		return fmt.Errorf("sends: %w", err)
	}

	idb := tx.Bucket(bucketIdentities)
	for _, id := range p.Identities {
		key := []byte(id.Key())
		if bytes.Equal(idb.Get(key), []byte(pid)) {
			if err := idb.Delete(key); err != nil {
				return err
			}
		}
	}
	// Aliases are few (one per merge), so a full scan is cheap.
	aliases := tx.Bucket(bucketAliases)
	var dead [][]byte
	err = aliases.ForEach(func(k, v []byte) error {
		if target, ok := resolveProfileTx(tx, string(v)); string(v) == pid || (ok && target == pid) {
			dead = append(dead, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range dead {
		if err := aliases.Delete(k); err != nil {
			return err
		}
	}

	// Keep suppressions, but only as a hash: the address must stay
	// unmailable without being readable. An address that was not
	// suppressed is suppressed as forgotten: the store will go on
	// restating the customer's old consent in later webhooks, and a person
	// who asked to be erased must not be mailed because of it (only an
	// opt-in decided after the erasure lifts it, as for an unsubscribe).
	sup := tx.Bucket(bucketSuppressions)
	for _, e := range profileEmails(&p) {
		var s Suppression
		ok, err := getJSON(sup, []byte(e), &s)
		if err != nil {
			return err
		}
		h := hashedEmailKey(e)
		if !ok {
			if err := suppressTx(tx, Suppression{Email: h, Reason: behavior.SuppressForgotten, Source: "nudge", At: db.now()}); err != nil {
				return err
			}
			continue
		}
		if err := sup.Delete([]byte(e)); err != nil {
			return err
		}
		err = suppressTx(tx, Suppression{Email: h, Reason: s.Reason, Source: s.Source, At: s.At})
		if err != nil {
			return err
		}
	}
	return tx.Bucket(bucketProfiles).Delete([]byte(pid))
}

// deleteRecordTx removes a stored record, its time index entry and its raw
// delivery (the caller handles rec_by_profile).
func deleteRecordTx(tx *bolt.Tx, sr storedRecord) error {
	if err := tx.Bucket(bucketRecords).Delete([]byte(sr.R.ID)); err != nil {
		return err
	}
	byTime := tx.Bucket(bucketRecByTime)
	if err := byTime.Delete(recByTimeKey(sr.R.At, sr.R.ReceivedAt, sr.R.ID)); err != nil {
		return err
	}
	if err := byTime.Delete(legacyRecByTimeKey(sr.R.At, sr.R.ID)); err != nil {
		return err
	}
	if sr.D != "" {
		if err := deleteDeliveryTx(tx, []byte(sr.D)); err != nil {
			return err
		}
	}
	return nil
}

// forgetJourneysTx deletes a profile's journeys with both indexes and
// cancels their pending step jobs. It relies only on the key layouts in
// db.go and the Journey JSON field names.
func (db *DB) forgetJourneysTx(tx *bolt.Tx, pid string) error {
	prefix := profilePrefix(pid)
	byProfile := tx.Bucket(bucketJourneysByProfile)
	journeys := tx.Bucket(bucketJourneys)
	for _, k := range keysWithPrefix(byProfile, prefix) {
		jid := k[len(prefix):]
		var j struct {
			Rule string `json:"rule"`
		}
		ok, err := getJSON(journeys, jid, &j)
		if err != nil {
			return err
		}
		if ok {
			if err := tx.Bucket(bucketJourneysByRule).Delete(join([]byte(j.Rule), jid)); err != nil {
				return err
			}
			if err := journeys.Delete(jid); err != nil {
				return err
			}
		}
		if _, err := db.cancelJobsTx(tx, "step:"+string(jid)); err != nil && !errors.Is(err, ErrInvalid) {
			return err
		}
		if err := byProfile.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// forgetSendsTx deletes a profile's sends with their status and provider
// indexes and cancels their pending jobs.
func (db *DB) forgetSendsTx(tx *bolt.Tx, pid string) error {
	prefix := profilePrefix(pid)
	byProfile := tx.Bucket(bucketSendsByProfile)
	sends := tx.Bucket(bucketSends)
	for _, k := range keysWithPrefix(byProfile, prefix) {
		for _, id := range idsAfterTime(k[len(prefix):]) {
			raw := sends.Get(id)
			if raw == nil {
				continue
			}
			var full Send
			if err := json.Unmarshal(raw, &full); err != nil {
				return fmt.Errorf("decode send %s: %w", id, err)
			}
			if _, err := db.cancelJobsTx(tx, "send:"+string(id)); err != nil {
				return err
			}
			byStatus := tx.Bucket(bucketSendsByStatus)
			// status | 0x00 | u64 updated ns | send id, with or without a
			// separator before the id.
			for _, sk := range [][]byte{
				append(join([]byte(full.Status), timeKey(full.UpdatedAt)), id...),
				join([]byte(full.Status), timeKey(full.UpdatedAt), id),
			} {
				if err := byStatus.Delete(sk); err != nil {
					return err
				}
			}
			// The outbox may index the provider id as given or without
			// Mailgun's angle brackets; drop whichever points here.
			byProvider := tx.Bucket(bucketSendsByProviderID)
			pm := strings.TrimSpace(full.ProviderMessageID)
			for _, key := range []string{pm, strings.TrimSuffix(strings.TrimPrefix(pm, "<"), ">")} {
				if key != "" && bytes.Equal(byProvider.Get([]byte(key)), id) {
					if err := byProvider.Delete([]byte(key)); err != nil {
						return err
					}
				}
			}
			if err := sends.Delete(id); err != nil {
				return err
			}
			if err := tx.Bucket(bucketMessages).Delete(id); err != nil {
				return err
			}
			break
		}
		if err := byProfile.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// keysWithPrefix copies the keys of b that start with prefix, so the caller
// may delete them without disturbing a live cursor.
func keysWithPrefix(b *bolt.Bucket, prefix []byte) [][]byte {
	var out [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		out = append(out, bytes.Clone(k))
	}
	return out
}

// scrubChunkPages bounds the pages one scrub transaction fills: bbolt
// builds a transaction's dirty pages in memory, so a store with gigabytes
// free is scrubbed in 64 MiB steps rather than one huge allocation.
const scrubChunkPages = 16384

// scrubFreePages overwrites the file's free pages with zeros: it fills a
// temporary bucket with one-page leaves until every free page is taken,
// then drops the bucket, whose pages then hold only zeros. It writes as
// many bytes as the file has free, which after a large Prune can be a lot;
// Forget is rare enough to pay that.
func (db *DB) scrubFreePages(chunk int) error {
	st := db.bolt.Stats()
	pages := st.FreePageN + st.PendingPageN
	if pages == 0 {
		return nil
	}
	pageSize := db.bolt.Info().PageSize
	// Two elements per leaf (bbolt never splits a leaf below two) filling
	// exactly one page: 16-byte page header + 2 × (16-byte element header +
	// 8-byte key + value).
	zero := make([]byte, (pageSize-16)/2-16-8)
	// Each step rewrites the bucket's last leaf and its branches, freeing a
	// few pages the next step takes instead of old free ones: add slack.
	pages += 4 * (pages/chunk + 1)
	for done := 0; done < pages; done += chunk {
		n := min(chunk, pages-done)
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketScrub)
			if err != nil {
				return err
			}
			b.FillPercent = 1.0
			for i := 2 * done; i < 2*(done+n); i++ {
				if err := b.Put(u64(uint64(i)), zero); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("fill: %w", err)
		}
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketScrub) }); err != nil {
		return fmt.Errorf("drop: %w", err)
	}
	return nil
}
