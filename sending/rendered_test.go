package sending

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/logsender"
	"github.com/nudge-email/nudge/storage"
)

func TestRenderedMemo(t *testing.T) {
	var r rendered
	msg := connectors.Message{SendID: "s1", Subject: "Your cart"}
	raw := []byte(`{"send_id":"s1","subject":"Your cart"}`)

	r.put("s1", raw, msg)
	_, ok := r.take("s1", []byte(`{"send_id":"s1","subject":"Changed"}`))
	assert.False(t, ok, "other bytes than those remembered")
	_, ok = r.take("s1", raw)
	assert.False(t, ok, "a miss forgets the entry too")

	r.put("s1", raw, msg)
	got, ok := r.take("s1", bytes.Clone(raw))
	assert.True(t, ok)
	assert.Equal(t, msg, got)
	_, ok = r.take("s1", raw)
	assert.False(t, ok, "taken once")

	for i := range renderedMax + 1 {
		r.put(fmt.Sprint(i), raw, msg)
	}
	assert.Len(t, r.m, 1, "a full memo starts again")
}

// The message a provider gets is the one stored with the send, whether it
// comes from the rendering remembered in memory or is decoded from the
// store.
func TestDeliveredMessageIsTheStoredOne(t *testing.T) {
	h := newHarness(t)
	remembered := h.plannedVia("a@example.com", "log")
	decoded := h.plannedVia("b@example.com", "log")
	// Stored bytes other than those rendered: the memo must not answer.
	var m map[string]any
	require.NoError(t, json.Unmarshal(decoded.Message, &m))
	m["subject"] = "Stored, not rendered"
	var err error
	decoded.Message, err = json.Marshal(m)
	require.NoError(t, err)

	errs := h.d.DeliverAll(h.ctx, []storage.Send{remembered, decoded}, false)
	require.Equal(t, []error{nil, nil}, errs)
	assert.Empty(t, h.d.rendered.m, "both renderings taken")

	outbox, err := os.ReadFile(filepath.Join(filepath.Dir(h.path), "mail", logsender.OutboxFile))
	require.NoError(t, err)
	lines := bytes.Split(bytes.TrimSpace(outbox), []byte("\n"))
	require.Len(t, lines, 2)
	for i, s := range []storage.Send{remembered, decoded} {
		var sent, stored map[string]any
		require.NoError(t, json.Unmarshal(lines[i], &sent))
		require.NoError(t, json.Unmarshal(s.Message, &stored))
		assert.Equal(t, stored, sent, "send %s", s.ID)
	}
	assert.Contains(t, string(lines[1]), "Stored, not rendered")
}
