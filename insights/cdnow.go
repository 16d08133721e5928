package insights

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// CDNOWRow is one line of the CDNOW transaction files used by Fader,
// Hardie & Lee to publish BG/NBD (CDNOW_master.txt, CDNOW_sample.txt):
// customer id, (sample id,) date YYYYMMDD, CDs bought, dollars spent.
type CDNOWRow struct {
	Customer string
	Date     time.Time
	Quantity int
	Amount   float64
}

// ReadCDNOW parses the whitespace-separated CDNOW files. Both layouts are
// accepted: four columns (master) or five (sample, whose second column is
// the sample id). Errors name the line.
func ReadCDNOW(r io.Reader) ([]CDNOWRow, error) {
	var rows []CDNOWRow
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) == 5 {
			f = append(f[:1], f[2:]...)
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("cdnow: line %d: %d fields, want 4 or 5", line, len(f))
		}
		d, err := time.Parse("20060102", f[1])
		if err != nil {
			return nil, fmt.Errorf("cdnow: line %d: date: %w", line, err)
		}
		q, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("cdnow: line %d: quantity: %w", line, err)
		}
		amt, err := strconv.ParseFloat(f[3], 64)
		if err != nil || amt < 0 || amt != amt {
			return nil, fmt.Errorf("cdnow: line %d: amount %q", line, f[3])
		}
		rows = append(rows, CDNOWRow{Customer: f[0], Date: d, Quantity: q, Amount: amt})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cdnow: line %d: %w", line, err)
	}
	return rows, nil
}

// SummarizeCDNOW groups rows by customer and summarises each at end
// (inclusive), in customer order of first appearance.
func SummarizeCDNOW(rows []CDNOWRow, end time.Time) []RFM {
	byCust := map[string][]Purchase{}
	var order []string
	for _, r := range rows {
		if _, ok := byCust[r.Customer]; !ok {
			order = append(order, r.Customer)
		}
		byCust[r.Customer] = append(byCust[r.Customer], Purchase{At: r.Date, Value: r.Amount})
	}
	out := make([]RFM, 0, len(order))
	for _, c := range order {
		if s, ok := Summarize(byCust[c], end, time.UTC); ok {
			out = append(out, s)
		}
	}
	return out
}
