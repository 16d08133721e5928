// Package sending turns due journey steps into email: the policy gate,
// personalization, the durable outbox with retries, unsubscribe and
// attribution.
//
// # Flow
//
// The journey engine calls [Dispatcher.Dispatch] when a step is due. It
// never talks to a provider: it runs the gate, renders the message and, in
// one store transaction, writes the outbox entry (status pending, the
// rendered [connectors.Message] as JSON) together with a [JobSend] job.
// The scheduler then runs [Dispatcher.HandleSend], which moves the entry
// through pending → sending → sent | retrying | dead | unknown and, on
// success, appends an email_sent record.
//
// Send ids are deterministic per journey step ([SendID]), so a Dispatch
// retried after a crash finds the existing entry instead of creating a
// second one.
//
// # Gate order
//
//  1. holdout (the engine decides it at journey start): a "held" send is
//     recorded and [dispatch.Held] returned;
//  2. suppression list (unsubscribed, bounced, spam report, dropped, manual);
//  3. consent, when policies.require_consent;
//  4. still-relevant guards: a cart or checkout trigger stops once the
//     profile placed an order after it; back_in_stock stops when the product
//     is out of stock again; price_dropped stops when the price went back up;
//  5. quiet hours in the customer's zone: deferred to the window's end;
//  6. frequency cap across rules: deferred until a slot frees (on_cap wait)
//     or skipped (on_cap skip); a lower-priority step also defers while a
//     higher-priority step of the same profile is due within a minute and
//     would need the last free slot.
//
// Suppression and consent are checked again just before the provider call,
// so an unsubscribe that lands between dispatch and delivery still wins.
//
// # Exactly once
//
// A send found in status sending when its job starts was interrupted after
// the request may have reached the provider. Neither SendGrid nor Mailgun
// offers an idempotency key, so there is no way to ask whether it went out:
// such a send is marked unknown and never repeated.
//
// Provider answers: 429 and 5xx are retried with exponential backoff and
// jitter ([DefaultBackoff]), waiting at least as long as Retry-After or
// X-RateLimit-Reset asks; a permanent 4xx goes to dead with the provider's
// error text; after Options.MaxAttempts the send goes to dead too. A
// timeout is retried like a 5xx: it is the one case in which a provider
// that did accept the request may see the message a second time.
//
// # Engagement and attribution
//
// [Dispatcher.Observe] counts engagement records on their send (found by
// our send id, else by the provider's message id; machine opens apart)
// and credits an order to the send clicked (or opened, with
// policies.attribute_opens) last within policies.attribution_window;
// [Dispatcher.RuleStats] sums it all per rule, holdout conversions
// included.
package sending
