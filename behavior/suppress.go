package behavior

// Attribute keys with a meaning across connectors.
const (
	// AttrPermanent is true on email_bounced and email_dropped records
	// whose cause is the address itself (hard bounce, invalid, previously
	// unsubscribed or spam-reporting address): the address must not be
	// mailed again.
	AttrPermanent = "permanent"
	// AttrReason holds the provider's reason text on bounces and drops.
	AttrReason = "reason"
	// AttrTopic holds the source's topic or event name, e.g. "orders/create".
	AttrTopic = "topic"
)

// Suppression reasons.
const (
	SuppressUnsubscribed = "unsubscribed"
	SuppressSpam         = "spam_reported"
	SuppressBounced      = "bounced"
	SuppressDropped      = "dropped"
	SuppressManual       = "manual"
	// SuppressForgotten holds a forgotten person's address (as a hash):
	// erased on request, so the shop must not write to it again unless
	// the person opts in anew after the erasure.
	SuppressForgotten = "forgotten"
)

// Suppresses reports whether the record puts its email address on the
// suppression list, and why.
func (r *Record) Suppresses() (reason string, ok bool) {
	switch r.Kind {
	case Unsubscribed:
		return SuppressUnsubscribed, true
	case SpamReported:
		return SuppressSpam, true
	case EmailBounced, EmailDropped:
		if p, _ := r.Attrs[AttrPermanent].(bool); p {
			if r.Kind == EmailBounced {
				return SuppressBounced, true
			}
			return SuppressDropped, true
		}
	}
	return "", false
}
