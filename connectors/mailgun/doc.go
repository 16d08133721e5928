// Package mailgun connects nudge to Mailgun in both directions: a Sender
// that hands rendered messages to the Messages API with our send id in its
// user variables, and a Receiver for Mailgun's webhooks that turns
// delivery and engagement events (delivered, failed, opened, clicked,
// unsubscribed, complained) back into behavior records linked to that
// send.
//
// Webhooks are verified with the HTTP webhook signing key (PROTOCOLS
// §5.2), never with the API key that mailgun-go falls back to:
// NewReceiver refuses to build a receiver without it.
package mailgun
