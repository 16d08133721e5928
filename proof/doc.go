// Package proof holds end-to-end tests of the guarantees of CONTRACT §6 and
// of nudge's handling of hostile input, security and privacy: nudge run as
// a child process and SIGKILLed at random while webhooks and due sends are
// in flight; duplicate and out-of-order delivery; a table of hostile
// requests; authentication of every route; erasure and backups. It has no
// non-test code besides this comment.
package proof
