package sending

import (
	"bytes"
	"sync"

	"github.com/nudge-email/nudge/connectors"
)

// renderedMax bounds the memo (a few KB a message). Entries normally live
// from a step's plan to its delivery a few milliseconds later, at most the
// scheduler's 128 workers' worth; one whose send is never delivered here (a
// replayed step whose send already existed) stays until the memo fills and
// is cleared.
const renderedMax = 1024

// rendered remembers the messages plan rendered, by send id, until the
// delivery right after the step's commit takes them: decoding the stored
// JSON back cost every due step a decode and about 2.5 KB of garbage
// (bench/sched). An entry is taken only for the very bytes it was encoded
// to, so a send whose stored message differs (or a retry, read back from
// the store) decodes as before.
type rendered struct {
	mu sync.Mutex
	m  map[string]renderedMessage
}

type renderedMessage struct {
	raw []byte // msg as stored
	msg connectors.Message
}

// put remembers that raw, the stored form of send id's message, encodes msg.
func (r *rendered) put(id string, raw []byte, msg connectors.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil || len(r.m) >= renderedMax {
		r.m = make(map[string]renderedMessage)
	}
	r.m[id] = renderedMessage{raw: raw, msg: msg}
}

// take returns and forgets the message remembered for send id if raw is
// the stored form it was remembered with.
func (r *rendered) take(id string, raw []byte) (connectors.Message, bool) {
	r.mu.Lock()
	e, ok := r.m[id]
	delete(r.m, id)
	r.mu.Unlock()
	if !ok || !bytes.Equal(e.raw, raw) {
		return connectors.Message{}, false
	}
	return e.msg, true
}
