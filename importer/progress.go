package importer

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress shows how an import goes. A small bar of our own rather than a
// library: it needs only a redrawn line on terminals and periodic plain
// lines elsewhere (logs, CI), and keeps the output exactly testable.
type progress struct {
	w        io.Writer
	name     string
	size     int64 // bytes of the file, -1 when unknown
	tty      bool
	now      func() time.Time
	start    time.Time
	last     time.Time
	interval time.Duration
	drawn    bool
}

// progressEvery is the gap between plain progress lines; a terminal bar
// is redrawn more often.
const (
	progressEvery = 5 * time.Second
	barEvery      = 200 * time.Millisecond
	barWidth      = 30
)

func newProgress(w io.Writer, name string, size int64, now func() time.Time) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, name: name, size: size, now: now, tty: isTerminal(w)}
	p.start = now()
	p.last = p.start
	p.interval = progressEvery
	if p.tty {
		p.interval = barEvery
	}
	return p
}

// isTerminal reports whether w is a character device, without a
// dependency on a terminal library.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// update redraws if enough time has passed; read is the bytes of the file
// consumed so far.
func (p *progress) update(read int64, rep *Report) {
	if p == nil {
		return
	}
	now := p.now()
	if now.Sub(p.last) < p.interval {
		return
	}
	p.last = now
	p.draw(read, rep, now)
}

func (p *progress) draw(read int64, rep *Report, now time.Time) {
	elapsed := now.Sub(p.start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(rep.Rows) / s
	}
	pct := -1
	if p.size > 0 {
		pct = int(min(read*100/p.size, 100))
	}
	if p.tty {
		bar := ""
		if pct >= 0 {
			fill := pct * barWidth / 100
			bar = fmt.Sprintf("[%s%s] %3d%% ", strings.Repeat("=", fill), strings.Repeat(" ", barWidth-fill), pct)
		}
		fmt.Fprintf(p.w, "\r\033[K%s %s%d rows, %d new, %d dup, %d rejected, %.0f rows/s", p.name, bar, rep.Rows, rep.Imported, rep.Duplicates, rep.Rejected, rate)
		p.drawn = true
		return
	}
	done := ""
	if pct >= 0 {
		done = fmt.Sprintf("%d%%, ", pct)
	}
	fmt.Fprintf(p.w, "import: %s: %s%d rows, %d new, %d duplicates, %d rejected, %.0f rows/s\n", p.name, done, rep.Rows, rep.Imported, rep.Duplicates, rep.Rejected, rate)
}

// done prints the file's final state.
func (p *progress) done(rep *Report) {
	if p == nil {
		return
	}
	now := p.now()
	if p.tty {
		p.draw(p.size, rep, now)
		fmt.Fprintln(p.w)
		return
	}
	fmt.Fprintf(p.w, "import: %s: done: %d rows, %d new, %d duplicates, %d rejected in %s\n", p.name, rep.Rows, rep.Imported, rep.Duplicates, rep.Rejected, now.Sub(p.start).Round(time.Millisecond))
}
