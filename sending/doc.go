// Package sending turns due journey steps into email: the policy gate,
// personalization, the durable outbox with retries, unsubscribe and
// attribution.
//
// # Flow
//
// When a step is due the journey engine calls [Dispatcher.Plan]: it runs
// the gate and renders the message but writes nothing. The engine then
// commits, in one store transaction ([storage.DB.CommitStep]), the outbox
// entry (already "sending", attempt 1, with the rendered
// [connectors.Message] as JSON), the journey's move to its next step and
// the end of the step's job, and calls [Dispatcher.Deliver] right away,
// outside the profile's lock. Deliver makes the provider call and, in one
// more transaction ([storage.DB.FinishSend]), marks the entry sent with
// its email_sent record. So a due step costs two commits.
//
// A retryable failure moves the entry to retrying with a [JobSend] job,
// which the scheduler runs through [Dispatcher.HandleSend]: sending → sent
// | retrying | dead | unknown, as for entries written by
// [Dispatcher.Dispatch] (the older path, kept for callers that want the
// entry and its job written for them) and for the admin's retry.
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
// On the job path (retries, the admin's retry) suppression and consent are
// checked again just before the provider call, so an unsubscribe that
// lands between dispatch and delivery still wins; an inline delivery
// follows its gate within the same step.
//
// # Exactly once
//
// A send still "sending" after the process restarts, or found sending
// when its job starts, was interrupted after the request may have reached
// the provider. Neither SendGrid nor Mailgun offers an idempotency key, so
// there is no way to ask whether it went out: such a send is marked
// unknown ([Dispatcher.Recover] runs when the scheduler starts) and never
// repeated. How many a crash leaves depends on how many deliveries were
// between their two commits at that moment: at most the scheduler's
// workers, a few in practice.
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
