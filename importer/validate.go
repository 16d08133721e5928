package importer

import (
	"fmt"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

// The limits below mirror storage's checks on Append (records.go), so a
// bad line is rejected with its line number before it can fail a whole
// batch; the batcher still copes should the two drift apart.
const (
	maxIDLen       = 200
	maxIdentityLen = 512
)

var (
	minRecordTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxRecordTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// anonymousKind reports the kinds that may carry no identity.
func anonymousKind(k behavior.Kind) bool {
	switch k {
	case behavior.ProductUpdated, behavior.PriceDropped, behavior.BackInStock:
		return true
	}
	return false
}

// prepare normalizes a record as the store will (email case, UTC times),
// derives a missing id from its content exactly as the store would, and
// validates it.
func prepare(r *behavior.Record) error {
	r.Email = behavior.NormalizeEmail(r.Email)
	r.At = r.At.UTC()
	r.Currency = strings.ToUpper(strings.TrimSpace(r.Currency))
	if !r.ReceivedAt.IsZero() {
		r.ReceivedAt = r.ReceivedAt.UTC()
	}
	switch {
	case r.Kind == "":
		return fmt.Errorf("no kind")
	case !r.Kind.Valid():
		return fmt.Errorf("unknown kind %q", r.Kind)
	case r.At.IsZero():
		return fmt.Errorf("no time (at)")
	case r.At.Before(minRecordTime) || !r.At.Before(maxRecordTime):
		return fmt.Errorf("time %s out of range (1970 to 2199)", r.At.Format(time.RFC3339))
	case len(r.ID) > maxIDLen:
		return fmt.Errorf("id of %d bytes (max %d)", len(r.ID), maxIDLen)
	case r.Email != "" && !plausibleEmail(r.Email):
		return fmt.Errorf("email %q is not an address", r.Email)
	case r.Currency != "" && !isCurrency(r.Currency):
		return fmt.Errorf("currency %q is not a 3-letter code", r.Currency)
	}
	ids := r.Identities()
	if len(ids) == 0 && !anonymousKind(r.Kind) {
		return fmt.Errorf("no identity (email, customer_id or anonymous_id)")
	}
	for _, id := range ids {
		if len(id.Value) > maxIdentityLen {
			return fmt.Errorf("%s of %d bytes (max %d)", id.Type, len(id.Value), maxIdentityLen)
		}
	}
	for _, it := range r.Items {
		if len(it.ProductID) > maxIDLen || strings.IndexByte(it.ProductID, 0) >= 0 {
			return fmt.Errorf("bad product_id %q", it.ProductID)
		}
	}
	if err := r.CheckAmounts(); err != nil {
		return err
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

// plausibleEmail is storage's deliberately loose address check: it
// rejects what is clearly not an address without refusing odd but
// deliverable ones.
func plausibleEmail(e string) bool {
	if len(e) > 254 {
		return false
	}
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || at == len(e)-1 {
		return false
	}
	if strings.IndexByte(e[at+1:], '@') >= 0 || strings.HasPrefix(e[at+1:], ".") || strings.HasSuffix(e, ".") {
		return false
	}
	for _, c := range e {
		if c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',' || c == ';' || c == '"' {
			return false
		}
	}
	return true
}
