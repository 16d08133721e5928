package sending

import "errors"

// Sentinel errors; callers test them with errors.Is.
var (
	// ErrNoSender reports a provider name without a configured sender.
	ErrNoSender = errors.New("no sender for provider")
	// ErrTemplate reports a step whose templates cannot be loaded or run.
	ErrTemplate = errors.New("template")
	// ErrNoRecipient reports a profile without an email address.
	ErrNoRecipient = errors.New("profile has no email address")
	// ErrBadToken reports an unsubscribe token that does not verify.
	ErrBadToken = errors.New("invalid unsubscribe token")
	// ErrState reports an admin action the send's status does not allow
	// (retrying a send that is not dead, discarding one already sent).
	ErrState = errors.New("send status does not allow this")
)
