// Package sendgrid connects nudge to SendGrid in both directions: a Sender
// that hands rendered messages to the v3 Mail Send API with our send id in
// its custom args, and a Receiver for the signed Event Webhook that turns
// SendGrid's delivery and engagement events (delivered, bounce, open,
// click, unsubscribe …) back into behavior records linked to that send.
//
// The Event Webhook must be signed (ECDSA P-256, PROTOCOLS §4.3):
// NewReceiver refuses to build a receiver without the webhook's public key,
// so unsigned events are never accepted.
package sendgrid
