// Package stripe receives Stripe webhook events and turns them into
// behavior records: checkout sessions (completed, expired, async payment),
// payment intents, invoices, subscriptions, refunds and customers.
//
// Events of any API version are accepted. Only the handful of fields nudge
// needs are decoded, into small structs of this package rather than the
// stripe-go v76 resource types: those are pinned to API version
// 2023-10-16 and reject newer payloads whose unrelated fields changed type
// (for example currency_conversion.fx_rate), while an event envelope and
// the amounts, ids and emails read here have kept their shape across
// versions.
//
// Signatures follow stripe-go's webhook package (hex HMAC-SHA256 of
// "<t>.<body>", any of several v1 values may match), with two differences:
// the time tolerance is checked against the clock the server passes in,
// and a timestamp further than the tolerance in the future is rejected
// too, where the SDK accepts any future timestamp. A signing secret being
// rolled is supported through Config.PreviousSecret.
package stripe
