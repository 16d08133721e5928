package storage

import (
	"bytes"
	"context"
	"fmt"
	json "github.com/goccy/go-json"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The outbox keeps one Send per journey step in bucketSends, its message
// in bucketMessages, and three indexes beside them (layouts in db.go): by
// profile and creation time (the frequency cap and the profile page), by
// status and update time (the admin's dead-letter list, newest first) and
// by the provider's message id (engagement webhooks that carry no send
// id). Every write below keeps all of them in step with the stored send
// inside one transaction, and every read joins the message back.

// CreateSend adds s unless a send with its id exists. The jobs are enqueued
// only when the send is created, in the same transaction, so a send and the
// job that delivers it exist together or not at all.
func (db *DB) CreateSend(ctx context.Context, s Send, jobs ...JobSpec) (Send, bool, error) {
	if err := validSend(s); err != nil {
		return Send{}, false, fmt.Errorf("storage: create send: %w", err)
	}
	raw, err := db.encodeNewSend(&s)
	if err != nil {
		return Send{}, false, fmt.Errorf("storage: create send %s: %w", s.ID, err)
	}
	var out Send
	var created bool
	// Group-committed: concurrent send workers share fsyncs. The function
	// may run again after a failed batch; it only sets what it read.
	err = db.batch(ctx, func(tx *bolt.Tx) error {
		var err error
		out, created, err = db.createSendTx(tx, s, raw, jobs)
		return err
	})
	if err != nil {
		return Send{}, false, fmt.Errorf("storage: create send %s: %w", s.ID, err)
	}
	return out, created, nil
}

// UpdateSend replaces the send with s.ID and enqueues jobs atomically. The
// creation time is the stored one (it keys the profile index); UpdatedAt
// becomes now unless the caller moved it forward itself.
func (db *DB) UpdateSend(ctx context.Context, s Send, jobs ...JobSpec) error {
	if err := validSend(s); err != nil {
		return fmt.Errorf("storage: update send: %w", err)
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	raw, err := encodeSend(s)
	if err != nil {
		return fmt.Errorf("storage: update send %s: %w", s.ID, err)
	}
	err = db.batch(ctx, func(tx *bolt.Tx) error { return db.updateSendTx(tx, s, raw, jobs, false) })
	if err != nil {
		return fmt.Errorf("storage: update send %s: %w", s.ID, err)
	}
	return nil
}

// encodeNewSend fills a new send's times and encodes it. Sends are encoded
// before the write transaction: the group commit runs every caller's
// function on one goroutine, so JSON work done there is serial.
func (db *DB) encodeNewSend(s *Send) ([]byte, error) {
	if s.CreatedAt.IsZero() {
		s.CreatedAt = db.now()
	}
	if s.UpdatedAt.IsZero() {
		s.UpdatedAt = s.CreatedAt
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return encodeSend(*s)
}

// encodeSend encodes s as bucketSends holds it: without its message,
// which putSendTx keeps in bucketMessages.
func encodeSend(s Send) ([]byte, error) {
	s.Message = nil
	return json.Marshal(s)
}

// getSendTx reads the send with id, its message joined back: from
// bucketMessages, or inline in a send an earlier version wrote.
func getSendTx(tx *bolt.Tx, id []byte) (Send, bool, error) {
	var s Send
	found, err := getJSON(tx.Bucket(bucketSends), id, &s)
	if err != nil || !found {
		return Send{}, found, err
	}
	if len(s.Message) == 0 {
		// bbolt's value lives in the map only while tx is open.
		if m := tx.Bucket(bucketMessages).Get(id); m != nil {
			s.Message = bytes.Clone(m)
		}
	}
	return s, true, nil
}

// putMessageTx stores m as the message of the send with id, or deletes
// it when m is empty. An unchanged message is not written again.
func putMessageTx(tx *bolt.Tx, id string, m MessageJSON) error {
	b := appendBucket(tx, bucketMessages)
	old := b.Get([]byte(id))
	switch {
	case len(m) == 0 && old == nil, len(m) > 0 && bytes.Equal(old, m):
		return nil
	case len(m) == 0:
		return b.Delete([]byte(id))
	}
	// bbolt keeps the value's slice until the commit: the caller's may
	// change before that.
	return b.Put([]byte(id), bytes.Clone(m))
}

// createSendTx is CreateSend inside a caller's transaction; raw is s
// encoded by encodeNewSend.
func (db *DB) createSendTx(tx *bolt.Tx, s Send, raw []byte, jobs []JobSpec) (Send, bool, error) {
	old, found, err := getSendTx(tx, []byte(s.ID))
	if err != nil {
		return Send{}, false, err
	}
	if found {
		return old, false, nil
	}
	if err := putSendTx(tx, nil, s, raw, false); err != nil {
		return Send{}, false, err
	}
	if _, err := db.enqueueJobsTx(tx, jobs); err != nil {
		return Send{}, false, err
	}
	return s, true, nil
}

// sendKeys is the part of a stored send its index entries derive from:
// decoding only these skips the rendered message on every update.
type sendKeys struct {
	ID                string    `json:"id"`
	ProfileID         string    `json:"profile_id"`
	Status            string    `json:"status"`
	ProviderMessageID string    `json:"provider_message_id,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

func (k sendKeys) send() Send {
	return Send{ID: k.ID, ProfileID: k.ProfileID, Status: k.Status, ProviderMessageID: k.ProviderMessageID, CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt}
}

// updateSendTx is UpdateSend inside a caller's transaction. raw is s
// encoded by the caller; it is encoded again only when the stored send
// moves s's times.
func (db *DB) updateSendTx(tx *bolt.Tx, s Send, raw []byte, jobs []JobSpec, keepMessage bool) error {
	var k sendKeys
	found, err := getJSON(tx.Bucket(bucketSends), []byte(s.ID), &k)
	if err != nil {
		return err
	}
	if !found {
		return ErrNotFound
	}
	old := k.send()
	if !s.CreatedAt.Equal(old.CreatedAt) || !s.UpdatedAt.After(old.UpdatedAt) {
		s.CreatedAt = old.CreatedAt
		if !s.UpdatedAt.After(old.UpdatedAt) {
			s.UpdatedAt = db.now().UTC()
		}
		raw = nil
	}
	if err := putSendTx(tx, &old, s, raw, keepMessage); err != nil {
		return err
	}
	_, err = db.enqueueJobsTx(tx, jobs)
	return err
}

func validSend(s Send) error {
	switch {
	case s.ID == "" || strings.IndexByte(s.ID, 0) >= 0:
		return fmt.Errorf("%w: send id %q", ErrInvalid, s.ID)
	case s.Status == "":
		return fmt.Errorf("%w: send %s without status", ErrInvalid, s.ID)
	case strings.IndexByte(s.ProfileID, 0) >= 0 || strings.IndexByte(s.Status, 0) >= 0:
		return fmt.Errorf("%w: send %s: NUL in profile id or status", ErrInvalid, s.ID)
	}
	return nil
}

// putSendTx writes s (raw, when not nil, is s encoded by encodeSend) and
// its message, and moves its index entries away from those of old (nil
// for a new send). With keepMessage an empty s.Message leaves the stored
// message as it is instead of deleting it.
func putSendTx(tx *bolt.Tx, old *Send, s Send, raw []byte, keepMessage bool) error {
	byProfile := tx.Bucket(bucketSendsByProfile)
	byStatus := tx.Bucket(bucketSendsByStatus)
	byProvider := tx.Bucket(bucketSendsByProviderID)
	// An index entry that does not change is left alone: putting the same
	// key again would still rewrite its page.
	newProfileKey, newStatusKey, newProvider := sendProfileKey(s), sendStatusKey(s), providerKey(s.ProviderMessageID)
	keepProfile, keepStatus, keepProvider := false, false, false
	if old != nil {
		oldProfileKey, oldStatusKey := sendProfileKey(*old), sendStatusKey(*old)
		if keepProfile = bytes.Equal(oldProfileKey, newProfileKey); !keepProfile {
			if err := byProfile.Delete(oldProfileKey); err != nil {
				return err
			}
		}
		if keepStatus = bytes.Equal(oldStatusKey, newStatusKey); !keepStatus {
			if err := byStatus.Delete(oldStatusKey); err != nil {
				return err
			}
		}
		if p := providerKey(old.ProviderMessageID); p != nil {
			// Only touch the entry if it points at this send: a provider id
			// is unique, but be defensive about stale data.
			if string(byProvider.Get(p)) == old.ID {
				if bytes.Equal(p, newProvider) {
					keepProvider = true
				} else if err := byProvider.Delete(p); err != nil {
					return err
				}
			}
		}
	}
	if raw == nil {
		var err error
		if raw, err = encodeSend(s); err != nil {
			return fmt.Errorf("encode send %s: %w", s.ID, err)
		}
	}
	if err := appendBucket(tx, bucketSends).Put([]byte(s.ID), raw); err != nil {
		return err
	}
	if !keepMessage || len(s.Message) > 0 {
		if err := putMessageTx(tx, s.ID, s.Message); err != nil {
			return err
		}
	}
	if !keepProfile {
		if err := byProfile.Put(newProfileKey, nil); err != nil {
			return err
		}
	}
	if !keepStatus {
		if err := byStatus.Put(newStatusKey, nil); err != nil {
			return err
		}
	}
	if newProvider != nil && !keepProvider {
		if err := byProvider.Put(newProvider, []byte(s.ID)); err != nil {
			return err
		}
	}
	return nil
}

// sendProfileKey is profile id | 0x00 | u64 created ns | send id.
func sendProfileKey(s Send) []byte {
	return append(join([]byte(s.ProfileID), timeKey(s.CreatedAt)), s.ID...)
}

// sendStatusKey is status | 0x00 | u64 updated ns | send id.
func sendStatusKey(s Send) []byte {
	return append(join([]byte(s.Status), timeKey(s.UpdatedAt)), s.ID...)
}

// providerKey normalizes a provider message id for the index. Mailgun's
// send API answers "<id@domain>" while its events carry the id without
// angle brackets, so both forms must find the same send.
func providerKey(id string) []byte {
	id = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(id), "<"), ">")
	if id == "" {
		return nil
	}
	return []byte(id)
}

// Send returns one send.
func (db *DB) Send(ctx context.Context, id string) (Send, error) {
	var s Send
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var found bool
		var err error
		s, found, err = getSendTx(tx, []byte(id))
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return Send{}, fmt.Errorf("storage: send %s: %w", id, err)
	}
	return s, nil
}

// SendStates returns the sends with ids, read in one transaction, in the
// order asked and without their messages: what changing a send's state
// needs, not what it says. Recording a batch of deliveries (FinishSends)
// read each send with its message, one transaction each, only to write
// the message back unchanged. Message is set only for a send an earlier
// version stored with its message inline, which the next FinishSends
// moves apart. A missing id is ErrNotFound.
func (db *DB) SendStates(ctx context.Context, ids []string) ([]Send, error) {
	out := make([]Send, len(ids))
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSends)
		for i, id := range ids {
			found, err := getJSON(b, []byte(id), &out[i])
			if err != nil {
				return fmt.Errorf("send %s: %w", id, err)
			}
			if !found {
				return fmt.Errorf("send %s: %w", id, ErrNotFound)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: send states: %w", err)
	}
	return out, nil
}

// SendByProviderMessageID finds a send by the provider's message id, with
// or without angle brackets. SendGrid events carry sg_message_id, which is
// the X-Message-Id of the send followed by ".filter…"; a miss on the whole
// id retries with the part before the first dot.
func (db *DB) SendByProviderMessageID(ctx context.Context, providerID string) (Send, error) {
	var s Send
	err := db.view(ctx, func(tx *bolt.Tx) error {
		byProvider := tx.Bucket(bucketSendsByProviderID)
		key := providerKey(providerID)
		if key == nil {
			return ErrNotFound
		}
		id := byProvider.Get(key)
		if id == nil {
			if i := bytes.IndexByte(key, '.'); i > 0 && !bytes.ContainsRune(key, '@') {
				id = byProvider.Get(key[:i])
			}
		}
		if id == nil {
			return ErrNotFound
		}
		var found bool
		var err error
		s, found, err = getSendTx(tx, id)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return Send{}, fmt.Errorf("storage: send by provider id %s: %w", providerID, err)
	}
	return s, nil
}

// SendsByProfile returns a profile's sends, oldest first.
func (db *DB) SendsByProfile(ctx context.Context, profileID string) ([]Send, error) {
	return db.SendsByProfileSince(ctx, profileID, time.Time{})
}

// SendsByProfileSince returns a profile's sends created at or after since,
// oldest first. The index is ordered by creation time, so the sends
// before since are not read at all: a due step's frequency cap looks at
// a day or so, and decoding a loyal customer's every send (each with its
// rendered message) on each step cost more than the rest of the step.
func (db *DB) SendsByProfileSince(ctx context.Context, profileID string, since time.Time) ([]Send, error) {
	var out []Send
	err := db.view(ctx, func(tx *bolt.Tx) error {
		out = out[:0]
		prefix := join([]byte(profileID), nil)
		start := prefix
		if !since.IsZero() {
			start = join([]byte(profileID), timeKey(since))
		}
		c := tx.Bucket(bucketSendsByProfile).Cursor()
		for k, _ := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			s, found, err := sendFromIndexKey(tx, k, len(prefix))
			if err != nil {
				return err
			}
			if found {
				out = append(out, s)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: sends of profile %s: %w", profileID, err)
	}
	return out, nil
}

// sendFromIndexKey loads the send an index key names: the key is a
// prefix of prefixLen bytes, an 8-byte time, then the send id. A key too
// short to hold an id, or naming a send that is gone, finds nothing.
func sendFromIndexKey(tx *bolt.Tx, k []byte, prefixLen int) (Send, bool, error) {
	if len(k) <= prefixLen+8 {
		return Send{}, false, nil
	}
	return getSendTx(tx, k[prefixLen+8:])
}

// ListSends returns sends with the given status ("" = all), most recently
// updated first, at most limit (0 = no limit).
func (db *DB) ListSends(ctx context.Context, status string, limit int) ([]Send, error) {
	var out []Send
	err := db.view(ctx, func(tx *bolt.Tx) error {
		out = out[:0]
		if status == "" {
			err := tx.Bucket(bucketSends).ForEach(func(k, v []byte) error {
				s, _, err := getSendTx(tx, k)
				if err != nil {
					return err
				}
				out = append(out, s)
				return nil
			})
			if err != nil {
				return err
			}
			sort.SliceStable(out, func(i, j int) bool {
				if !out[i].UpdatedAt.Equal(out[j].UpdatedAt) {
					return out[i].UpdatedAt.After(out[j].UpdatedAt)
				}
				return out[i].ID > out[j].ID
			})
			if limit > 0 && len(out) > limit {
				out = out[:limit]
			}
			return nil
		}
		prefix := join([]byte(status), nil)
		c := tx.Bucket(bucketSendsByStatus).Cursor()
		// Seek past the prefix, then walk backwards for newest first.
		end := append(append([]byte(nil), prefix...), bytes.Repeat([]byte{0xff}, 9)...)
		k, _ := c.Seek(end)
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			if limit > 0 && len(out) >= limit {
				break
			}
			s, found, err := sendFromIndexKey(tx, k, len(prefix))
			if err != nil {
				return err
			}
			if found {
				out = append(out, s)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: list sends %q: %w", status, err)
	}
	return out, nil
}
