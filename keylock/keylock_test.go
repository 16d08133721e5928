package keylock

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestLockExcludesSameKeyOnly(t *testing.T) {
	var l Locks
	unlock := l.Lock("a")
	other := make(chan struct{})
	go func() { l.Lock("b")(); close(other) }()
	select {
	case <-other:
	case <-time.After(5 * time.Second):
		t.Fatal("a lock on b waited for a")
	}
	same := make(chan struct{})
	go func() { l.Lock("a")(); close(same) }()
	select {
	case <-same:
		t.Fatal("a second lock on a did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	<-same
	if n := l.Len(); n != 0 {
		t.Fatalf("%d keys left after every unlock", n)
	}
}

// TestLockAllOrdersKeys has many goroutines lock overlapping sets given
// in opposite orders, with duplicates: sorted acquisition never
// deadlocks, and every key is exclusive while held.
func TestLockAllOrdersKeys(t *testing.T) {
	var l Locks
	held := map[string]bool{}
	var mu sync.Mutex
	sets := [][]string{{"a", "b", "c"}, {"c", "b", "a"}, {"b", "b", "d"}, {"d", "a"}, {"c"}}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				keys := sets[(g+i)%len(sets)]
				unlock := l.LockAll(keys)
				mu.Lock()
				for _, k := range keys {
					if held[k] {
						t.Errorf("%s held twice", k)
					}
				}
				for _, k := range keys {
					held[k] = true
				}
				mu.Unlock()
				runtime.Gosched() // let another holder of a key show itself
				mu.Lock()
				for _, k := range keys {
					held[k] = false
				}
				mu.Unlock()
				unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("deadlock: LockAll did not finish")
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("%d keys left after every unlock", n)
	}
}
