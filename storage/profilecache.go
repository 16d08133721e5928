package storage

import (
	"bytes"
	"maps"
	"slices"
	"sync"
)

// Bounds of profileCache: entries, and bytes of stored JSON (the decoded
// form takes about as much again). A profile whose JSON is larger than
// profileCacheMaxValue is not kept.
const (
	profileCacheSize     = 2048
	profileCacheMaxBytes = 4 << 20
	profileCacheMaxValue = 64 << 10
)

// profileCache remembers the decoded form of the profile values the Append
// path last wrote, so the next record of the same person (the next
// tracking call of a session, a second order) skips decoding its JSON,
// which grows with every identity the person collects.
//
// It is a memo of decode(bytes), not a second copy of the data: an entry is
// used only when the bytes stored in the transaction at hand are exactly
// the bytes it was made from, so a rolled-back batch, a merge, a Forget or
// any other writer simply makes it miss.
type profileCache struct {
	mu    sync.Mutex
	m     map[string]profileCacheEntry
	bytes int // sum of len(raw)
}

type profileCacheEntry struct {
	raw []byte // the stored JSON; owned by the cache, never modified
	p   Profile
}

// get returns a copy of the profile decoded from raw, if remembered.
func (c *profileCache) get(id string, raw []byte) (Profile, bool) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if !ok || !bytes.Equal(e.raw, raw) {
		return Profile{}, false
	}
	return cloneProfile(e.p), true
}

// put remembers that raw decodes to p. The cache keeps both: the caller
// must not modify either afterwards.
func (c *profileCache) put(id string, raw []byte, p Profile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[id]; ok {
		c.bytes -= len(old.raw)
		delete(c.m, id)
	}
	if len(raw) > profileCacheMaxValue {
		return
	}
	if c.m == nil {
		c.m = make(map[string]profileCacheEntry)
	}
	for k, e := range c.m { // arbitrary victims
		if len(c.m) < profileCacheSize && c.bytes+len(raw) <= profileCacheMaxBytes {
			break
		}
		c.bytes -= len(e.raw)
		delete(c.m, k)
	}
	c.m[id] = profileCacheEntry{raw: raw, p: p}
	c.bytes += len(raw)
}

// cloneProfile copies p deeply enough that changing the copy (as
// applyFacts and applyToProfile do) leaves p alone.
func cloneProfile(p Profile) Profile {
	p.Identities = slices.Clone(p.Identities)
	p.Counts = maps.Clone(p.Counts)
	p.LastAt = maps.Clone(p.LastAt)
	p.Scores = maps.Clone(p.Scores)
	return p
}

// drop forgets a profile's entry (Forget: no copy of the person stays).
func (c *profileCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok {
		c.bytes -= len(e.raw)
		delete(c.m, id)
	}
}
