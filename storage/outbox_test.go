package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/clock"
)

func openOutboxDB(t *testing.T) (*DB, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	db, err := Open(filepath.Join(t.TempDir(), "nudge.db"), Options{Clock: clk, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, clk
}

// statusIndex lists the send ids indexed under status, in key order.
func statusIndex(t *testing.T, db *DB, status string) []string {
	t.Helper()
	var ids []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		prefix := join([]byte(status), nil)
		c := tx.Bucket(bucketSendsByStatus).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			ids = append(ids, string(k[len(prefix)+8:]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestCreateSendIsUniqueAndEnqueuesAtomically(t *testing.T) {
	ctx := context.Background()
	db, clk := openOutboxDB(t)
	s := Send{ID: "s1", JourneyID: "j1", Rule: "cart", Step: 1, ProfileID: "p1", Email: "ann@example.com", Status: SendPending}
	job := JobSpec{Kind: "send", UniqueKey: "send:s1", Payload: []byte(`{"send_id":"s1"}`)}

	got, created, err := db.CreateSend(ctx, s, job)
	if err != nil || !created {
		t.Fatalf("first create: created=%v err=%v", created, err)
	}
	if !got.CreatedAt.Equal(clk.Now()) {
		t.Errorf("CreatedAt = %v, want the store clock %v", got.CreatedAt, clk.Now())
	}
	again := s
	again.Status = SendSent
	got2, created2, err := db.CreateSend(ctx, again, JobSpec{Kind: "send", UniqueKey: "send:s1:other"})
	if err != nil || created2 {
		t.Fatalf("second create: created=%v err=%v", created2, err)
	}
	if got2.Status != SendPending {
		t.Errorf("second create returned status %q, want the stored %q", got2.Status, SendPending)
	}
	jobs, err := db.ClaimDueJobs(ctx, clk.Now(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].UniqueKey != "send:s1" {
		t.Fatalf("jobs = %+v, want exactly the first create's job", jobs)
	}
	if _, _, err := db.CreateSend(ctx, Send{ID: "", Status: SendPending}); !errors.Is(err, ErrInvalid) {
		t.Errorf("create without id: err = %v, want ErrInvalid", err)
	}
}

func TestUpdateSendKeepsIndexesInSync(t *testing.T) {
	ctx := context.Background()
	db, clk := openOutboxDB(t)
	s, _, err := db.CreateSend(ctx, Send{ID: "s1", ProfileID: "p1", Status: SendPending})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name     string
		status   string
		provider string
	}{
		{"to sending", SendSending, ""},
		{"to retrying", SendRetrying, ""},
		{"to sent with id", SendSent, "<abc@mg.example.com>"},
		{"provider id changes", SendSent, "xyz"},
	}
	for _, st := range steps {
		clk.Advance(time.Minute)
		s.Status, s.ProviderMessageID = st.status, st.provider
		if err := db.UpdateSend(ctx, s); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for _, other := range []string{SendPending, SendSending, SendRetrying, SendSent} {
			ids := statusIndex(t, db, other)
			want := 0
			if other == st.status {
				want = 1
			}
			if len(ids) != want {
				t.Errorf("%s: index %q holds %v, want %d entries", st.name, other, ids, want)
			}
		}
		got, err := db.Send(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		if !got.UpdatedAt.Equal(clk.Now()) {
			t.Errorf("%s: UpdatedAt = %v, want %v", st.name, got.UpdatedAt, clk.Now())
		}
		if !got.CreatedAt.Equal(s.CreatedAt) {
			t.Errorf("%s: CreatedAt moved to %v", st.name, got.CreatedAt)
		}
	}
	if _, err := db.SendByProviderMessageID(ctx, "abc@mg.example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old provider id still resolves: %v", err)
	}
	if err := db.UpdateSend(ctx, Send{ID: "nope", Status: SendSent}); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of a missing send: %v, want ErrNotFound", err)
	}
}

func TestSendByProviderMessageID(t *testing.T) {
	ctx := context.Background()
	db, _ := openOutboxDB(t)
	for _, s := range []Send{
		{ID: "mg", ProfileID: "p", Status: SendSent, ProviderMessageID: "<20260301.1@mg.example.com>"},
		{ID: "sg", ProfileID: "p", Status: SendSent, ProviderMessageID: "14c5d75ce93.dfd.64b469"},
	} {
		if _, _, err := db.CreateSend(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, lookup, want string
	}{
		{"mailgun with brackets", "<20260301.1@mg.example.com>", "mg"},
		{"mailgun event form without brackets", "20260301.1@mg.example.com", "mg"},
		{"sendgrid exact", "14c5d75ce93.dfd.64b469", "sg"},
		{"sendgrid event sg_message_id", "14c5d75ce93.filter0001.16648.5515E0B88.0", ""},
		{"unknown", "nope", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.SendByProviderMessageID(ctx, tt.lookup)
			if tt.want == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("got %q, %v; want ErrNotFound", got.ID, err)
				}
				return
			}
			if err != nil || got.ID != tt.want {
				t.Fatalf("got %q, %v; want %q", got.ID, err, tt.want)
			}
		})
	}
}

func TestSendGridEventIDResolvesToXMessageID(t *testing.T) {
	ctx := context.Background()
	db, _ := openOutboxDB(t)
	if _, _, err := db.CreateSend(ctx, Send{ID: "sg", ProfileID: "p", Status: SendSent, ProviderMessageID: "W3rGm5pIQpaD6b0y2jPNgA"}); err != nil {
		t.Fatal(err)
	}
	got, err := db.SendByProviderMessageID(ctx, "W3rGm5pIQpaD6b0y2jPNgA.filterdrecv-5645d9c87f-78k5x-1-5F8E2B7E-2.0")
	if err != nil || got.ID != "sg" {
		t.Fatalf("got %q, %v; want sg", got.ID, err)
	}
}

func TestListSendsAndSendsByProfile(t *testing.T) {
	ctx := context.Background()
	db, clk := openOutboxDB(t)
	create := func(id, profile, status string) {
		t.Helper()
		clk.Advance(time.Second)
		if _, _, err := db.CreateSend(ctx, Send{ID: id, ProfileID: profile, Status: status}); err != nil {
			t.Fatal(err)
		}
	}
	create("a", "p1", SendDead)
	create("b", "p2", SendSent)
	create("c", "p1", SendDead)
	create("d", "p10", SendDead) // "p1" must not prefix-match "p10"
	create("e", "p1", SendSent)

	ids := func(ss []Send) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return out
	}
	tests := []struct {
		name   string
		status string
		limit  int
		want   []string
	}{
		{"dead newest first", SendDead, 0, []string{"d", "c", "a"}},
		{"dead limited", SendDead, 2, []string{"d", "c"}},
		{"sent", SendSent, 0, []string{"e", "b"}},
		{"all", "", 0, []string{"e", "d", "c", "b", "a"}},
		{"all limited", "", 1, []string{"e"}},
		{"none", SendUnknown, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.ListSends(ctx, tt.status, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if g := ids(got); !slices.Equal(g, tt.want) {
				t.Errorf("got %v, want %v", g, tt.want)
			}
		})
	}
	byProfile, err := db.SendsByProfile(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if g := ids(byProfile); !slices.Equal(g, []string{"a", "c", "e"}) {
		t.Errorf("SendsByProfile(p1) = %v, want [a c e]", g)
	}

	// Moving a send to dead puts it at the head of the dead list.
	clk.Advance(time.Second)
	b, _ := db.Send(ctx, "b")
	b.Status = SendDead
	if err := db.UpdateSend(ctx, b); err != nil {
		t.Fatal(err)
	}
	dead, _ := db.ListSends(ctx, SendDead, 0)
	if g := ids(dead); !slices.Equal(g, []string{"b", "d", "c", "a"}) {
		t.Errorf("after update dead = %v", g)
	}
}

// TestSendMessageStoredApart checks that a send's message is kept in
// bucketMessages, byte for byte (JSON or not), and never in the send,
// which is rewritten at every status change; that sends an earlier
// version wrote with the message inline (as JSON, or base64 before that)
// still read back whole; and that rewriting such a send moves its
// message out.
func TestSendMessageStoredApart(t *testing.T) {
	ctx := context.Background()
	db, _ := openOutboxDB(t)
	msg := `{"subject":"Your cart","to":{"email":"ann@example.com"}}`
	tests := []struct {
		name   string
		stored string // the send as an earlier version stored it; empty: CreateSend writes it
		msg    []byte
	}{
		{name: "new send", msg: []byte(msg)},
		{name: "no message", msg: nil},
		{name: "not JSON", msg: []byte("\x00not json")},
		{name: "inline JSON, by an earlier version", msg: []byte(msg),
			stored: `{"id":"%s","profile_id":"p1","status":"sent","message":` + msg + `,"created_at":"2026-03-01T12:00:00Z","updated_at":"2026-03-01T12:00:00Z"}`},
		{name: "inline base64, by an earlier version", msg: []byte(msg),
			stored: `{"id":"%s","profile_id":"p1","status":"sent","message":"eyJzdWJqZWN0IjoiWW91ciBjYXJ0IiwidG8iOnsiZW1haWwiOiJhbm5AZXhhbXBsZS5jb20ifX0=","created_at":"2026-03-01T12:00:00Z","updated_at":"2026-03-01T12:00:00Z"}`},
	}
	stored := func(id string) (send, message []byte) {
		_ = db.bolt.View(func(tx *bolt.Tx) error {
			send = bytes.Clone(tx.Bucket(bucketSends).Get([]byte(id)))
			message = bytes.Clone(tx.Bucket(bucketMessages).Get([]byte(id)))
			return nil
		})
		return send, message
	}
	storedApart := func(t *testing.T, when, id string, want []byte) {
		t.Helper()
		send, message := stored(id)
		if bytes.Contains(send, []byte(`"message"`)) {
			t.Errorf("%s: message inside the send: %s", when, send)
		}
		if !bytes.Equal(message, want) {
			t.Errorf("%s: stored message %q, want %q", when, message, want)
		}
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("s%d", i)
			if tc.stored == "" {
				if _, _, err := db.CreateSend(ctx, Send{ID: id, ProfileID: "p1", Status: SendPending, Message: tc.msg}); err != nil {
					t.Fatal(err)
				}
				storedApart(t, "created", id, tc.msg)
			} else if err := db.bolt.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketSends).Put([]byte(id), fmt.Appendf(nil, tc.stored, id))
			}); err != nil {
				t.Fatal(err)
			}
			s, err := db.Send(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s.Message, tc.msg) {
				t.Errorf("message read back as %q, want %q", s.Message, tc.msg)
			}
			// Every read joins the message: a listing, then a status
			// change written back from it.
			list, err := db.SendsByProfile(ctx, "p1")
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range list {
				if l.ID == id && !bytes.Equal(l.Message, tc.msg) {
					t.Errorf("listed message %q, want %q", l.Message, tc.msg)
				}
			}
			// A state read leaves the message out, unless an earlier
			// version stored it inline; finishing the send from that read
			// keeps the message (and moves an inline one apart).
			states, err := db.SendStates(ctx, []string{id})
			if err != nil {
				t.Fatal(err)
			}
			var wantState []byte
			if tc.stored != "" {
				wantState = tc.msg
			}
			if !bytes.Equal(states[0].Message, wantState) {
				t.Errorf("state read with message %q, want %q", states[0].Message, wantState)
			}
			fin := states[0]
			fin.Status, fin.UpdatedAt = SendSending, fin.UpdatedAt.Add(time.Minute)
			if err := db.FinishSends(ctx, []SendFinish{{Send: fin}}); err != nil {
				t.Fatal(err)
			}
			storedApart(t, "finished", id, tc.msg)
			s.Status, s.UpdatedAt = SendSent, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
			if err := db.UpdateSend(ctx, s); err != nil {
				t.Fatal(err)
			}
			storedApart(t, "updated", id, tc.msg)
			if again, _ := db.Send(ctx, id); !bytes.Equal(again.Message, tc.msg) || again.Status != SendSent {
				t.Errorf("after the update: status %s, message %q", again.Status, again.Message)
			}
		})
	}
	// Replacing a send replaces its message too: dropped when the new
	// send has none.
	s, _ := db.Send(ctx, "s0")
	s.Message = nil
	if err := db.UpdateSend(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, message := stored("s0"); message != nil {
		t.Errorf("message kept after an update without one: %q", message)
	}
	if _, err := db.SendStates(ctx, []string{"s1", "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("state of a missing send: %v, want ErrNotFound", err)
	}
}

// TestSendsByProfileSince: only the profile's sends created at or after
// since come back, oldest first; another profile whose id extends this
// one's is not mixed in.
func TestSendsByProfileSince(t *testing.T) {
	ctx := context.Background()
	db, clk := openOutboxDB(t)
	start := clk.Now()
	for i, p := range []string{"p1", "p1", "p10", "p1", "p1"} {
		clk.Set(start.Add(time.Duration(i) * time.Hour))
		s := Send{ID: fmt.Sprintf("s%d", i), ProfileID: p, Rule: "r", Step: 1, Email: p + "@example.com", Status: SendSent}
		if _, _, err := db.CreateSend(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		since time.Time
		want  string
	}{
		{time.Time{}, "s0 s1 s3 s4"},
		{start.Add(time.Hour), "s1 s3 s4"}, // at since counts
		{start.Add(90 * time.Minute), "s3 s4"},
		{start.Add(5 * time.Hour), ""},
	} {
		got, err := db.SendsByProfileSince(ctx, "p1", c.since)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		if strings.Join(ids, " ") != c.want {
			t.Errorf("since %v: %v, want %s", c.since, ids, c.want)
		}
	}
	all, err := db.SendsByProfile(ctx, "p1")
	if err != nil || len(all) != 4 {
		t.Errorf("SendsByProfile = %d sends, %v; want 4", len(all), err)
	}
}

// BenchmarkSendsOfLoyalCustomer: a due step's frequency cap reads the
// profile's sends of the last day. A customer mailed twice a week for two
// years has ~200 sends with ~1 KB rendered messages; "all" is what the
// cap read before (every send decoded), "last-day" what it reads now.
func BenchmarkSendsOfLoyalCustomer(b *testing.B) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	db, err := Open(filepath.Join(b.TempDir(), "nudge.db"), Options{Clock: clk, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	msg := []byte(`{"template_data":{"items":[` + strings.Repeat(`{"title":"Trail Runner","price":"$54.00","url":"https://example.com/p/trail"},`, 12) + `{}]}}`)
	start := clk.Now()
	for i := range 200 {
		clk.Set(start.Add(time.Duration(i) * 84 * time.Hour)) // twice a week
		s := Send{ID: fmt.Sprintf("s%03d", i), ProfileID: "loyal", Rule: "r", Step: 1, Email: "l@example.com", Status: SendSent, Message: msg}
		if _, _, err := db.CreateSend(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	now := clk.Now()
	for _, c := range []struct {
		name  string
		since time.Time
	}{{"all", time.Time{}}, {"last-day", now.Add(-24 * time.Hour)}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := db.SendsByProfileSince(ctx, "loyal", c.since); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
