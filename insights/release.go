package insights

import (
	"context"

	"github.com/nudge-email/nudge/storage"
)

// defaultReleaseEvery is how many records a refit reads between two
// releases of the store's mapped pages. A page fault on a file mapping
// maps the neighbouring cached pages too (the kernel's fault-around, 64
// KiB), so reading one record makes ~25 KB resident: measured on 1M
// records (bench/memory -refit), RssFile peaked at 116 MB releasing every
// 4,096 records, 62 MB every 1,024, 45 MB every 256, 1,486 MB never. A
// release costs one read transaction and one madvise; the refit took the
// same time either way.
const defaultReleaseEvery = 1024

// releaser releases the store's memory-mapped pages during a long scan
// (storage.MappedReleaser; a store without a mapping has nothing to
// release).
type releaser struct {
	ctx    context.Context
	e      *Engine
	st     storage.MappedReleaser
	every  int
	unread int // records read since the last release
	failed bool
}

func (e *Engine) newReleaser(ctx context.Context) *releaser {
	r := &releaser{ctx: ctx, e: e, every: e.opts.ReleaseEvery}
	if r.every <= 0 {
		r.every = defaultReleaseEvery
	}
	r.st, _ = e.store.(storage.MappedReleaser)
	return r
}

// read counts n records read, releasing when enough have been.
func (r *releaser) read(n int) {
	r.unread += n
	if r.unread >= r.every {
		r.release()
	}
}

// release drops the mapped pages now. A failure is logged once: it costs
// memory, not correctness.
func (r *releaser) release() {
	r.unread = 0
	if r.st == nil || r.failed || r.ctx.Err() != nil {
		return
	}
	if err := r.st.ReleaseMapped(r.ctx); err != nil {
		r.failed = true
		r.e.log.Warn("insights: releasing the store's mapped pages failed", "error", err)
	}
}
