// Package keylock serialises work per key (a profile, a send) without
// striping: a batch of due steps holds the locks of 64 profiles at once,
// and with striped locks two batches of distinct profiles almost surely
// share a stripe (64 of 1,024 stripes held: a second batch of 64 misses
// them all with probability (1-64/1024)^64 ≈ 2 %), so batches ran one at a
// time. Locks here exist only while held or awaited.
package keylock

import (
	"slices"
	"sync"
)

// Locks is a set of mutexes, one per key in use. The zero value is ready.
type Locks struct {
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	mu   sync.Mutex
	refs int // holders and waiters
}

// Lock locks key and returns its unlock.
func (l *Locks) Lock(key string) (unlock func()) {
	e := l.acquire(key)
	e.mu.Lock()
	return func() { l.release(key, e) }
}

// LockAll locks every key (duplicates once), in key order so that two
// callers locking overlapping sets can never wait on each other, and
// returns the unlock of them all.
func (l *Locks) LockAll(keys []string) (unlock func()) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	held := make([]*entry, len(keys))
	for i, k := range keys {
		held[i] = l.acquire(k)
		held[i].mu.Lock()
	}
	return func() {
		for i, k := range keys {
			l.release(k, held[i])
		}
	}
}

// acquire returns key's entry, counted as in use.
func (l *Locks) acquire(key string) *entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*entry{}
	}
	e := l.m[key]
	if e == nil {
		e = &entry{}
		l.m[key] = e
	}
	e.refs++
	return e
}

// release unlocks e and forgets it once nobody holds or awaits it.
func (l *Locks) release(key string, e *entry) {
	e.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(l.m, key)
	}
}

// Len reports how many keys are held or awaited (tests, leak checks).
func (l *Locks) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
