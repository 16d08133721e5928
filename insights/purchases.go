package insights

import (
	"github.com/nudge-email/nudge/behavior"
)

// orderKey identifies an order across the records that mention it.
func orderKey(r behavior.Record) string {
	if id := r.Ref(behavior.RefOrderID); id != "" {
		return r.Source + "/" + r.Store + "/" + id
	}
	return "record/" + r.ID
}

// Orders returns one record per order in a profile's records: the
// order_placed record, or the order_paid one for sources that only say
// paid (Stripe checkouts); cancelled orders are left out. Input order is
// kept.
func Orders(recs []behavior.Record) []behavior.Record {
	cancelled := map[string]bool{}
	placed := map[string]bool{}
	for _, r := range recs {
		switch r.Kind {
		case behavior.OrderCancelled:
			cancelled[orderKey(r)] = true
		case behavior.OrderPlaced:
			placed[orderKey(r)] = true
		}
	}
	seen := map[string]bool{}
	var out []behavior.Record
	for _, r := range recs {
		k := orderKey(r)
		switch {
		case r.Kind != behavior.OrderPlaced && r.Kind != behavior.OrderPaid,
			r.Kind == behavior.OrderPaid && placed[k],
			cancelled[k], seen[k]:
			continue
		}
		seen[k] = true
		out = append(out, r)
	}
	return out
}

// orderValue is an order's amount in minor units: its value, or the sum
// of its lines when the source gave none.
func orderValue(r behavior.Record) int64 {
	if r.Value > 0 {
		return r.Value
	}
	return behavior.ItemValue(r.Items)
}
