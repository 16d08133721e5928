package insights

import (
	"math"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

// EngagementHalfLife is how fast engagement and intent decay: an action
// counts half as much two weeks later.
const EngagementHalfLife = 14 * 24 * time.Hour

// Scores are a profile's engagement and purchase-intent scores, both in
// [0, 100).
//
// Each qualifying record contributes its weight decayed by age,
// w · 2^(-age/14d); dwell time adds min(seconds, 300)/60 · 0.5 per page
// (five minutes at most, so a tab left open does not count). The raw sum
// S is mapped to 100 · (1 - e^(-S/10)): a handful of recent actions gives
// a middling score, it saturates instead of growing without bound, and
// scores stay comparable between shops.
//
//	engagement: email open (non-machine) 1, email click 3, page view 0.5,
//	            product view 1, search 1, cart update 2, checkout 3, order 3
//	intent:     product view 1, search 1, cart update 3, checkout 5;
//	            an order after them resets intent (the need was met)
type Scores struct {
	Engagement float64
	Intent     float64
}

var engagementWeights = map[behavior.Kind]float64{
	behavior.EmailOpened: 1, behavior.EmailClicked: 3, behavior.PageViewed: 0.5,
	behavior.ProductViewed: 1, behavior.Searched: 1, behavior.CartUpdated: 2,
	behavior.CheckoutStarted: 3, behavior.OrderPlaced: 3,
}

var intentWeights = map[behavior.Kind]float64{
	behavior.ProductViewed: 1, behavior.Searched: 1, behavior.CartUpdated: 3, behavior.CheckoutStarted: 5,
}

// EngagementScores computes the scores of a profile's records (any order)
// at now. ok is false when no record counts, so no score is written.
func EngagementScores(records []behavior.Record, now time.Time) (Scores, bool) {
	var eng, intent float64
	var lastOrder time.Time
	for _, r := range records {
		if r.Kind == behavior.OrderPlaced && r.At.After(lastOrder) && !r.At.After(now) {
			lastOrder = r.At
		}
	}
	counted := false
	for _, r := range records {
		if r.At.After(now) {
			continue
		}
		if r.Kind == behavior.EmailOpened && r.Ref(behavior.RefMachineOpen) == "true" {
			continue // privacy proxies open everything; that is not the person
		}
		decay := math.Exp2(-now.Sub(r.At).Hours() / EngagementHalfLife.Hours())
		if w, ok := engagementWeights[r.Kind]; ok {
			eng += w * decay
			counted = true
		}
		if r.Seconds > 0 && (r.Kind == behavior.PageViewed || r.Kind == behavior.ProductViewed) {
			eng += math.Min(r.Seconds, 300) / 60 * 0.5 * decay
		}
		if w, ok := intentWeights[r.Kind]; ok && r.At.After(lastOrder) {
			intent += w * decay
			if r.Seconds > 0 {
				intent += math.Min(r.Seconds, 300) / 60 * 0.5 * decay
			}
			counted = true
		}
	}
	if !counted {
		return Scores{}, false
	}
	squash := func(s float64) float64 { return 100 * (1 - math.Exp(-s/10)) }
	return Scores{Engagement: squash(eng), Intent: squash(intent)}, true
}
