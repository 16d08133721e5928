package storage

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// committer is the store's group commit: concurrent batch calls share
// write transactions, so many webhooks pay for one fsync.
//
// bbolt's own DB.Batch closes a batch when its timer fires and queues it
// for the writer lock; under load several small batches then wait behind
// each other, each paying its own commit and two fdatasyncs (measured: ~5
// calls per commit with 64 concurrent webhooks). Here a single runner
// takes everything queued as soon as the writer is free, so calls that
// arrive while one transaction commits all share the next: batches grow
// with load, and a lone call never waits out a window.
//
// Only when holdMinIngests ingests (Appends) arrived while the last commit
// ran (so commits run back to back under webhook load, and every waiting
// call has already waited part of a commit) does the runner hold the next
// group open a little longer: at most Options.MaxBatchDelay and half the
// previous commit, or until fullGroup calls wait. Each commit rewrites the branch
// pages, meta and freelist its writes share and pays two fdatasyncs, so
// fewer, larger groups write fewer pages per call. Webhooks arrive however
// fast the store commits, so holding their group lets later ones share it;
// the scheduler's writes come from workers that each wait for their last
// commit, so holding a group of only those would idle them
// (bench/README.md, "Holding the group"). The exception is a patient call
// (a scheduler claim made while its workers are busy, whose jobs cannot
// start yet anyway): a group of only those waits up to patientFor for
// another call to share its commit.
type committer struct {
	mu      sync.Mutex
	queue   []*commitCall
	running bool // a runner goroutine owns the writer
	// ingests counts queued calls made by Append (see commitCall.ingest).
	ingests int
	// hold is the runner holding a group open; runQueued ends it once
	// the queue reaches fullGroup.
	hold wakeup
	// urgent counts queued calls that are not patient (see
	// commitCall.patient); while only patient calls wait, the runner
	// waits for company, and runQueued ends that wait when one comes.
	urgent  int
	company wakeup
	stats   commitCounters
	// busyUntil (unix ns) is when the last commit that saw webhooks
	// queue behind it stops counting as ingest load (see IngestBusy).
	busyUntil atomic.Int64
}

// ingestBusyFor is how long one commit that found holdMinIngests
// webhooks queued behind it keeps IngestBusy true: long enough to span
// the next few commits of a steady load, short enough that background
// work gets its share back soon after a burst.
const ingestBusyFor = 250 * time.Millisecond

// fullGroup is the queue length at which a held group commits at once.
const fullGroup = 64

// holdMinIngests is how many ingests must have arrived during a commit
// for the next group to be held: webhooks then come faster than commits,
// so a short hold gathers more of them. Fewer means a moderate load, where
// holding would only add latency (at 250 orders/s it doubled the median).
const holdMinIngests = 2

// CommitBounds are the upper bounds, in seconds, of CommitStats.Buckets.
// They span a lone small commit on a fast disk (two fdatasyncs, ~0.5 ms)
// to a commit stalled behind a slow disk.
func CommitBounds() []float64 {
	b := commitBounds()
	return b[:]
}

// commitBounds is CommitBounds as an array, so the commit path can read it
// without allocating.
func commitBounds() [commitBuckets - 1]float64 {
	return [commitBuckets - 1]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}
}

// CommitStats are running totals of the group commit since the store was
// opened. A webhook's Append waits for the commit in progress and then
// for its own, so under load its store time is about one and a half
// commit durations: these say why that is long (many writes per commit,
// many pages per write, a slow disk).
type CommitStats struct {
	// Commits is the number of shared write transactions committed.
	Commits uint64
	// Writes is the number of calls they carried: appends, job claims and
	// outcomes, sends, score updates.
	Writes uint64
	// Pages is the number of pages they wrote (each 4 KiB on Linux);
	// bbolt rewrites every page on the path to each changed key.
	Pages uint64
	// Seconds is the total time from the start of each transaction to the
	// end of its commit (running the writes, writing pages, two fdatasyncs).
	Seconds float64
	// Buckets[i] counts commits that took at most CommitBounds()[i] and
	// longer than the bound before; the last element counts the rest.
	Buckets []uint64
	// Holds counts groups held open for more ingests (see
	// Options.MaxBatchDelay), HoldSeconds the time spent holding them.
	Holds       uint64
	HoldSeconds float64
	// SpillSeconds is the part of Seconds bbolt spent turning changed
	// nodes into pages, WriteSeconds the part spent writing them and the
	// meta page, with both fdatasyncs. The rest ran the writes themselves.
	SpillSeconds, WriteSeconds float64
}

// commitCounters accumulate CommitStats; the runner updates them and any
// goroutine may read them.
type commitCounters struct {
	commits, writes, pages, nanos atomic.Uint64
	buckets                       [commitBuckets]atomic.Uint64
	holds, holdNanos              atomic.Uint64
	spillNanos, writeNanos        atomic.Uint64
}

// commitBuckets is len(CommitBounds())+1: ten bounds and the overflow.
const commitBuckets = 11

func (c *commitCounters) record(writes int, st bolt.TxStats, d time.Duration) {
	pages := st.GetWrite()
	c.spillNanos.Add(uint64(max(st.GetSpillTime(), 0)))
	c.writeNanos.Add(uint64(max(st.GetWriteTime(), 0)))
	c.commits.Add(1)
	c.writes.Add(uint64(writes))
	c.pages.Add(uint64(max(pages, 0)))
	c.nanos.Add(uint64(d))
	bounds := commitBounds()
	i := 0
	for i < len(bounds) && d.Seconds() > bounds[i] {
		i++
	}
	c.buckets[i].Add(1)
}

// IngestBusy reports whether webhooks are arriving faster than the store
// commits them: a commit within the last ingestBusyFor found at least
// holdMinIngests Appends queued behind it. Background work that competes
// with them for the writer and the CPU (the evaluation of stored records)
// uses it to give way during a burst; at a moderate load, where the
// writer keeps up, it stays false.
func (db *DB) IngestBusy() bool {
	return time.Now().UnixNano() < db.commit.busyUntil.Load()
}

// CommitStats returns the group commit's running totals.
func (db *DB) CommitStats() CommitStats {
	c := &db.commit.stats
	out := CommitStats{
		Commits: c.commits.Load(),
		Writes:  c.writes.Load(),
		Pages:   c.pages.Load(),
		Seconds: time.Duration(c.nanos.Load()).Seconds(),
		Buckets: make([]uint64, len(c.buckets)),
		Holds:   c.holds.Load(),
		// The hold time, like Seconds, from the nanosecond counter.
		HoldSeconds:  time.Duration(c.holdNanos.Load()).Seconds(),
		SpillSeconds: time.Duration(c.spillNanos.Load()).Seconds(),
		WriteSeconds: time.Duration(c.writeNanos.Load()).Seconds(),
	}
	for i := range c.buckets {
		out.Buckets[i] = c.buckets[i].Load()
	}
	return out
}

type commitCall struct {
	fn  func(*bolt.Tx) error
	err chan error
	// ingest marks an Append: an arrival from outside, which a held
	// group waits for (see committer).
	ingest bool
	// patient marks a write made ahead of need (a scheduler claim while
	// its workers are busy): rather than pay a commit of its own it
	// waits, up to patientFor, for another call to commit with.
	patient bool
}

// patientFor is the longest a patient call waits for company. The
// scheduler's batches commit every few milliseconds while it claims
// ahead, so a claim rarely waits this long.
const patientFor = 5 * time.Millisecond

// errTrySolo tells a caller its function failed inside a shared
// transaction: the others were re-run without it, and it must run alone
// to get its own result.
var errTrySolo = errors.New("storage: batch function failed; re-run solo")

// panicked wraps a panic in a batch function, which must not take down
// the runner (and every other caller with it).
type panicked struct{ v any }

func (p panicked) Error() string {
	if err, ok := p.v.(error); ok {
		return err.Error()
	}
	return fmt.Sprint("panic: ", p.v)
}

// run queues fn for the next shared write transaction and waits for it to
// commit. fn may run more than once (when another function of its batch
// fails, the batch is rolled back and re-run without that one), so it must
// not change state outside the transaction except by overwriting.
func (db *DB) runBatched(fn func(*bolt.Tx) error) error {
	return db.runQueued(&commitCall{fn: fn, err: make(chan error, 1)})
}

// runIngestBatched is runBatched for an ingest, whose group may be held
// open (see committer).
func (db *DB) runIngestBatched(fn func(*bolt.Tx) error) error {
	return db.runQueued(&commitCall{fn: fn, err: make(chan error, 1), ingest: true})
}

// runQueued queues c and waits for its outcome.
func (db *DB) runQueued(c *commitCall) error {
	fn := c.fn
	g := &db.commit
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if c.ingest {
		g.ingests++
	}
	if !c.patient {
		g.urgent++
		g.company.end()
	}
	if len(g.queue) >= fullGroup {
		g.hold.end()
	}
	if !g.running {
		g.running = true
		go db.commitLoop()
	}
	g.mu.Unlock()
	err := <-c.err
	if err == errTrySolo {
		err = db.bolt.Update(func(tx *bolt.Tx) error { return safelyCall(fn, tx) })
	}
	return err
}

// commitLoop runs queued calls, up to MaxBatchSize per transaction, until
// the queue is empty.
func (db *DB) commitLoop() {
	g := &db.commit
	// last is the previous commit of this run when enough ingests arrived
	// while it ran (0 before the first, or when they did not).
	var last time.Duration
	for {
		g.mu.Lock()
		if hold := min(db.opts.MaxBatchDelay, last/2); hold > 0 && g.ingests > 0 && len(g.queue) < fullGroup {
			db.holdGroup(hold)
		}
		if len(g.queue) > 0 && g.urgent == 0 {
			db.awaitCompany(patientFor)
		}
		n := min(len(g.queue), db.opts.MaxBatchSize)
		if n == 0 {
			g.running = false
			g.queue = nil
			g.mu.Unlock()
			return
		}
		calls := make([]*commitCall, n)
		copy(calls, g.queue)
		for _, c := range calls {
			if c.ingest {
				g.ingests--
			}
			if !c.patient {
				g.urgent--
			}
		}
		clear(g.queue[:n])
		g.queue = g.queue[n:]
		g.mu.Unlock()
		start := time.Now()
		arrived := db.commitCalls(calls)
		last = 0
		if arrived {
			last = time.Since(start)
		}
	}
}

// holdGroup waits up to d for the queue to reach fullGroup; g.mu is held
// on entry and on return.
func (db *DB) holdGroup(d time.Duration) {
	g := &db.commit
	start := time.Now()
	g.hold.wait(&g.mu, d)
	g.stats.holds.Add(1)
	g.stats.holdNanos.Add(uint64(time.Since(start)))
}

// awaitCompany waits up to d for a call that is not patient; g.mu is
// held on entry and on return.
func (db *DB) awaitCompany(d time.Duration) {
	g := &db.commit
	g.company.wait(&g.mu, d)
}

// wakeup is a wait of the commit runner that runQueued may end early.
// Both are guarded by the committer's mutex.
type wakeup struct {
	waiting bool
	ch      chan struct{}
}

// wait releases mu for up to d, or until end is called; mu is held on
// entry and on return.
func (w *wakeup) wait(mu *sync.Mutex, d time.Duration) {
	if w.ch == nil {
		w.ch = make(chan struct{}, 1)
	}
	select { // drop a signal left from an earlier wait
	case <-w.ch:
	default:
	}
	w.waiting = true
	mu.Unlock()
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-w.ch:
	}
	t.Stop()
	mu.Lock()
	w.waiting = false
}

// end ends a wait in progress, if any.
func (w *wakeup) end() {
	if !w.waiting {
		return
	}
	w.waiting = false
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// commitCalls runs calls in one write transaction. A failing function is
// taken out and told to run solo; the rest run again in a new transaction.
//
// It reports whether holdMinIngests ingests were queued by the time the
// transaction committed, before its callers are told: webhooks that
// arrived while it ran, the sign of commits running back to back under
// ingest load. A caller that writes again as soon as its write returns
// (an import, a test) does not count.
func (db *DB) commitCalls(calls []*commitCall) (arrived bool) {
	for len(calls) > 0 {
		failed := -1
		start := time.Now()
		var committed *bolt.Tx
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			committed = tx
			for i, c := range calls {
				if err := safelyCall(c.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			calls[failed].err <- errTrySolo
			calls = append(calls[:failed], calls[failed+1:]...)
			continue
		}
		if err == nil {
			db.commit.stats.record(len(calls), committed.Stats(), time.Since(start))
		}
		db.commit.mu.Lock()
		arrived = db.commit.ingests >= holdMinIngests
		db.commit.mu.Unlock()
		if arrived {
			db.commit.busyUntil.Store(time.Now().Add(ingestBusyFor).UnixNano())
		}
		// Success, or a commit error every caller shares.
		for _, c := range calls {
			c.err <- err
		}
		return arrived
	}
	return false
}

func safelyCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicked{p}
		}
	}()
	return fn(tx)
}
