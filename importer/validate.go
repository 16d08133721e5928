package importer

import (
	"fmt"
	"strings"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

// prepare normalizes a record as the store will (email case, UTC times),
// validates it with the store's own rules (so a bad line is rejected with
// its line number before it can fail a whole batch) plus the currency
// code, and derives a missing id from its content exactly as the store
// would.
func prepare(r *behavior.Record) error {
	r.Email = behavior.NormalizeEmail(r.Email)
	r.At = r.At.UTC()
	r.Currency = strings.ToUpper(strings.TrimSpace(r.Currency))
	if !r.ReceivedAt.IsZero() {
		r.ReceivedAt = r.ReceivedAt.UTC()
	}
	if err := storage.ValidateRecord(r); err != nil {
		return err
	}
	if r.Currency != "" && !isCurrency(r.Currency) {
		return fmt.Errorf("currency %q is not a 3-letter code", r.Currency)
	}
	if r.ID == "" {
		r.ID = behavior.ContentID(*r)
	}
	return nil
}

func isCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}
