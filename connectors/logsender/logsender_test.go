package logsender

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nudge-email/nudge/connectors"
)

func TestSendWritesMessageAndMaskedLogLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	var logs bytes.Buffer
	s := New(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	m := connectors.Message{
		SendID:  "abc123",
		To:      connectors.Address{Email: "ann@example.com", Name: "Ann"},
		From:    connectors.Address{Email: "shop@example.com"},
		Subject: "You left something behind",
		HTML:    "<p>Trail Runner</p>",
		Text:    "Trail Runner",
		Headers: map[string]string{"List-Unsubscribe": "<https://x/u/t>"},
		Tags:    []string{"cart", "step-1"},
		Args:    map[string]string{connectors.ArgSendID: "abc123"},
	}
	res, err := s.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if res.Provider != "log" || res.ProviderMessageID != "log-abc123" {
		t.Errorf("result = %+v", res)
	}
	if s.Name() != "log" {
		t.Errorf("Name() = %q", s.Name())
	}
	raw, err := os.ReadFile(filepath.Join(dir, OutboxFile))
	if err != nil {
		t.Fatal(err)
	}
	var got connectors.Message
	if err := json.Unmarshal(bytes.TrimSpace(raw), &got); err != nil {
		t.Fatalf("outbox line is not one JSON message: %v\n%s", err, raw)
	}
	if got.HTML != m.HTML || got.Subject != m.Subject || got.To.Email != m.To.Email || got.Headers["List-Unsubscribe"] != "<https://x/u/t>" {
		t.Errorf("stored message = %+v", got)
	}
	html, err := os.ReadFile(filepath.Join(dir, "abc123.html"))
	if err != nil || string(html) != m.HTML {
		t.Errorf("html file = %q, %v", html, err)
	}
	line := logs.String()
	if strings.Contains(line, "ann@example.com") {
		t.Errorf("log line leaks the address: %s", line)
	}
	if !strings.Contains(line, "a***@example.com") || !strings.Contains(line, "send_id=abc123") {
		t.Errorf("log line lacks masked address or send id: %s", line)
	}
}

func TestSendAppendsWholeLinesConcurrently(t *testing.T) {
	dir := t.TempDir()
	s := New(dir, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := connectors.Message{SendID: "s" + string(rune('a'+i%26)) + strings.Repeat("x", i), To: connectors.Address{Email: "b@example.com"}, TemplateID: "d-1",
				TemplateData: map[string]any{"items": []any{map[string]any{"title": strings.Repeat("t", 1000)}}}}
			if _, err := s.Send(context.Background(), m); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	f, err := os.Open(filepath.Join(dir, OutboxFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lines := 0
	for sc.Scan() {
		var m connectors.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v", lines+1, err)
		}
		lines++
	}
	if lines != n {
		t.Errorf("%d lines, want %d", lines, n)
	}
}

func TestSendRejectsBadMessages(t *testing.T) {
	s := New(t.TempDir(), nil)
	tests := []struct {
		name string
		m    connectors.Message
	}{
		{"no send id", connectors.Message{To: connectors.Address{Email: "a@example.com"}}},
		{"no recipient", connectors.Message{SendID: "x"}},
		{"path in send id", connectors.Message{SendID: "../x", To: connectors.Address{Email: "a@example.com"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Send(context.Background(), tt.m); !errors.Is(err, connectors.ErrPermanent) {
				t.Errorf("err = %v, want ErrPermanent", err)
			}
		})
	}
}

func TestMask(t *testing.T) {
	tests := map[string]string{
		"ann@example.com": "a***@example.com",
		"élise@ex.fr":     "é***@ex.fr",
		"nope":            "***",
		"@example.com":    "***",
	}
	for in, want := range tests {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestForgetRemovesLinesAndFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := New(dir, nil)
	ctx := context.Background()
	for _, m := range []connectors.Message{
		{SendID: "s1", To: connectors.Address{Email: "ann@example.com"}, Subject: "a", HTML: "<p>Ann</p>"},
		{SendID: "s2", To: connectors.Address{Email: "bo@example.com"}, Subject: "b", HTML: "<p>Bo</p>"},
		{SendID: "s3", To: connectors.Address{Email: "ANN@example.com"}, Subject: "c"},
	} {
		if _, err := s.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Forget(ctx, []string{"ann@example.com"}, []string{"s1"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, OutboxFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(string(b)), "ann@example.com") || !strings.Contains(string(b), "bo@example.com") {
		t.Fatalf("outbox after forget:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "s1.html")); !os.IsNotExist(err) {
		t.Fatalf("s1.html still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "s2.html")); err != nil {
		t.Fatalf("s2.html gone: %v", err)
	}
}

// outbox.log stays open between sends; a rotated or removed file must
// still be noticed, and Forget's rewrite must not leave sends going to
// the replaced file.
func TestSendFollowsRotatedAndRewrittenOutbox(t *testing.T) {
	dir := t.TempDir()
	s := New(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer s.Close()
	ctx := context.Background()
	msg := func(id, to string) connectors.Message {
		return connectors.Message{SendID: id, To: connectors.Address{Email: to}, Subject: "hi"}
	}
	lines := func(name string) int {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Count(b, []byte("\n"))
	}
	for _, id := range []string{"s1", "s2"} {
		if _, err := s.Send(ctx, msg(id, "ann@example.com")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(filepath.Join(dir, OutboxFile), filepath.Join(dir, OutboxFile+".1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, msg("s3", "bob@example.com")); err != nil {
		t.Fatal(err)
	}
	if got := lines(OutboxFile + ".1"); got != 2 {
		t.Errorf("rotated file has %d lines, want 2", got)
	}
	if got := lines(OutboxFile); got != 1 {
		t.Errorf("new outbox.log has %d lines, want 1", got)
	}
	if err := s.Forget(ctx, []string{"bob@example.com"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, msg("s4", "cy@example.com")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, OutboxFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("bob@")) || !bytes.Contains(b, []byte(`"s4"`)) || bytes.Count(b, []byte("\n")) != 1 {
		t.Errorf("after forget and a send, outbox.log = %q", b)
	}
	if err := os.Remove(filepath.Join(dir, OutboxFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, msg("s5", "cy@example.com")); err != nil {
		t.Fatal(err)
	}
	if got := lines(OutboxFile); got != 1 {
		t.Errorf("recreated outbox.log has %d lines, want 1", got)
	}
}

// TestSendBatchKeepsOrderAndRefusesBadMessagesAlone: a batch is appended
// in order in one piece; a message without a recipient or with a send id
// that is not a file name is refused on its own, permanently, and the
// others still go out.
func TestSendBatchKeepsOrderAndRefusesBadMessagesAlone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	s := New(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var _ connectors.BatchSender = s
	msg := func(id, to string) connectors.Message {
		return connectors.Message{SendID: id, To: connectors.Address{Email: to}, Subject: "s " + id, HTML: "<p>" + id + "</p>"}
	}
	ms := []connectors.Message{msg("a1", "a@example.com"), msg("b2", ""), msg("../x", "c@example.com"), msg("d4", "d@example.com")}
	res, errs := s.SendBatch(context.Background(), ms)
	if len(res) != 4 || len(errs) != 4 {
		t.Fatalf("%d results, %d errors for 4 messages", len(res), len(errs))
	}
	for _, i := range []int{1, 2} {
		if !errors.Is(errs[i], connectors.ErrPermanent) {
			t.Errorf("message %d: error %v, want permanent", i, errs[i])
		}
	}
	for _, i := range []int{0, 3} {
		if errs[i] != nil || res[i].ProviderMessageID != "log-"+ms[i].SendID {
			t.Errorf("message %d: %+v, %v", i, res[i], errs[i])
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, OutboxFile))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var m connectors.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		ids = append(ids, m.SendID)
	}
	if strings.Join(ids, ",") != "a1,d4" {
		t.Errorf("outbox holds %v, want a1,d4 in order", ids)
	}
	for _, id := range []string{"a1", "d4"} {
		if html, err := os.ReadFile(filepath.Join(dir, id+".html")); err != nil || string(html) != "<p>"+id+"</p>" {
			t.Errorf("html of %s = %q, %v", id, html, err)
		}
	}

	// A cancelled context refuses the whole batch as retryable.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, errs = s.SendBatch(ctx, ms[:1])
	var retry *connectors.RetryableError
	if !errors.As(errs[0], &retry) {
		t.Errorf("cancelled batch: %v, want retryable", errs[0])
	}
}
