package web

import "errors"

// Sentinel errors. The HTTP layer maps ErrInvalid and ErrTooLarge to 400
// (as Segment does for both), ErrUnauthorized to 401.
var (
	// ErrInvalid reports a body or call that cannot be read: bad JSON, a
	// missing type, event name or identity, an invalid nudge_id token.
	ErrInvalid = errors.New("web: invalid call")
	// ErrTooLarge reports a call over 32 KB or a batch over its limit.
	ErrTooLarge = errors.New("web: payload too large")
	// ErrUnauthorized reports a missing or wrong write key.
	ErrUnauthorized = errors.New("web: bad or missing write key")
	// ErrToken reports a nudge_id token that is malformed, forged or made
	// with another secret.
	ErrToken = errors.New("web: invalid identity token")
	// ErrTokenExpired reports a well-signed nudge_id token past its expiry.
	ErrTokenExpired = errors.New("web: identity token expired")
	// ErrUnknownSample reports a sample event name Sample does not know.
	ErrUnknownSample = errors.New("web: unknown sample event")
)
