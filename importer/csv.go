package importer

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// normHeader folds a column name for matching: Shopify writes
// "Lineitem name", WooCommerce exports "billing_email", people retype
// them as "Billing Email".
func normHeader(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	return strings.Join(strings.FieldsFunc(h, func(r rune) bool { return r == ' ' || r == '_' || r == '-' }), "_")
}

// table reads a CSV export with a header row and gives access to its
// columns by name.
type table struct {
	r    *csv.Reader
	col  map[string]int
	rec  []string
	file string
}

func newTable(r *bufio.Reader, file string) (*table, error) {
	if bom, _ := r.Peek(3); len(bom) == 3 && bom[0] == 0xef && bom[1] == 0xbb && bom[2] == 0xbf {
		_, _ = r.Discard(3)
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // some exporters drop trailing empty cells
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("import: %s: empty file (no header row)", file)
	}
	if err != nil {
		return nil, fmt.Errorf("import: %s: header: %w", file, err)
	}
	t := &table{r: cr, col: map[string]int{}, file: file}
	for i, h := range header {
		if n := normHeader(h); n != "" {
			if _, dup := t.col[n]; !dup {
				t.col[n] = i
			}
		}
	}
	return t, nil
}

// require checks that the header has every named column (given in
// normHeader form), naming the missing ones.
func (t *table) require(format string, names ...string) error {
	var missing []string
	for _, n := range names {
		if _, ok := t.col[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("import: %s: not a %s file: missing column(s) %s", t.file, format, strings.Join(missing, ", "))
	}
	return nil
}

// next reads a row; it returns the row's first line, or io.EOF. A row the
// CSV reader cannot parse comes back as a rowError, and reading goes on.
func (t *table) next() (int, error) {
	rec, err := t.r.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return pe.StartLine, rowError{pe}
		}
		return 0, err
	}
	t.rec = rec
	line, _ := t.r.FieldPos(0)
	return line, nil
}

type rowError struct{ pe *csv.ParseError }

func (e rowError) Error() string {
	return fmt.Sprintf("malformed CSV: %v", e.pe.Err)
}

// get returns a column of the current row, "" when the column or cell is
// absent.
func (t *table) get(name string) string {
	i, ok := t.col[name]
	if !ok || i >= len(t.rec) {
		return ""
	}
	return strings.TrimSpace(t.rec[i])
}

// first returns the first non-empty of several columns.
func (t *table) first(names ...string) string {
	for _, n := range names {
		if v := t.get(n); v != "" {
			return v
		}
	}
	return ""
}

// timeLayouts are the timestamp forms seen in store exports: Shopify's
// "2024-01-05 10:11:12 -0500", RFC 3339, and WooCommerce's zone-less
// local "2024-01-05 10:11:12".
var timeLayouts = []string{
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 -07:00",
	"2006-01-02 15:04 -0700",
	time.RFC3339Nano,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseTime reads a timestamp in one of timeLayouts; those without an
// offset are in loc.
func parseTime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time like 2024-01-05 10:11:12 -0500", s)
}
