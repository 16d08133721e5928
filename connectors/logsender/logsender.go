// Package logsender is the "log" email provider, the default: instead of
// mailing anyone it writes each fully rendered message to the data dir and
// a summary to the log, so a shop sees exactly what nudge would send
// before it adds provider keys.
//
// Files in dir: outbox.log holds one JSON message per line, appended;
// <send id>.html holds the rendered HTML body of local-template messages,
// to open in a browser.
package logsender

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"

	json "github.com/goccy/go-json"

	"github.com/nudge-email/nudge/connectors"
)

// Name is the provider name of this sender.
const Name = "log"

// OutboxFile is the JSON-lines file inside the sender's dir.
const OutboxFile = "outbox.log"

// Sender writes messages to files instead of sending them. It is safe for
// concurrent use.
type Sender struct {
	dir    string
	logger *slog.Logger
	mu     sync.Mutex // one writer at a time keeps JSON lines whole
	// out is outbox.log, kept open between sends (opening, creating the
	// dir and closing cost more than the write); outInfo identifies the
	// file it has open, so a rotated or deleted outbox.log is noticed and
	// a new one started.
	out     *os.File
	outInfo os.FileInfo
}

// New returns a Sender writing into dir (created on first send); a nil
// logger means slog.Default().
func New(dir string, logger *slog.Logger) *Sender {
	if logger == nil {
		logger = slog.Default()
	}
	return &Sender{dir: dir, logger: logger}
}

// Name returns "log".
func (s *Sender) Name() string { return Name }

// Send appends m to outbox.log, writes its HTML beside it and logs a line
// without the full address. The provider message id is "log-"+SendID.
func (s *Sender) Send(ctx context.Context, m connectors.Message) (connectors.Result, error) {
	res, errs := s.SendBatch(ctx, []connectors.Message{m})
	return res[0], errs[0]
}

// SendBatch is Send for many messages, appended to outbox.log in one
// write (connectors.BatchSender).
func (s *Sender) SendBatch(ctx context.Context, ms []connectors.Message) ([]connectors.Result, []error) {
	res := make([]connectors.Result, len(ms))
	errs := make([]error, len(ms))
	fail := func(err error) ([]connectors.Result, []error) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return res, errs
	}
	if err := ctx.Err(); err != nil {
		return fail(&connectors.RetryableError{Err: err})
	}
	encoded := make([][]byte, len(ms))
	size := 0
	var ok []int
	for i, m := range ms {
		if m.SendID == "" || m.To.Email == "" {
			errs[i] = fmt.Errorf("logsender: message without send id or recipient: %w", connectors.ErrPermanent)
			continue
		}
		if strings.ContainsAny(m.SendID, `/\`) || m.SendID == "." || m.SendID == ".." {
			errs[i] = fmt.Errorf("logsender: send id %q is not a file name: %w", m.SendID, connectors.ErrPermanent)
			continue
		}
		line, err := json.Marshal(m)
		if err != nil {
			errs[i] = fmt.Errorf("logsender: encode %s: %v: %w", m.SendID, err, connectors.ErrPermanent)
			continue
		}
		encoded[i], size = line, size+len(line)+1
		ok = append(ok, i)
	}
	if len(ok) == 0 {
		return res, errs
	}
	// Sized once: appending a batch's lines one by one regrew the buffer
	// about seven times for a batch of 64.
	lines := make([]byte, 0, size)
	for _, i := range ok {
		lines = append(append(lines, encoded[i]...), '\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, i := range ok {
		m := ms[i]
		if m.HTML == "" {
			continue
		}
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return fail(fmt.Errorf("logsender: %w", err))
		}
		if err := os.WriteFile(filepath.Join(s.dir, m.SendID+".html"), []byte(m.HTML), 0o600); err != nil {
			return fail(fmt.Errorf("logsender: write html: %w", err))
		}
	}
	f, err := s.outbox()
	if err != nil {
		return fail(err)
	}
	// One write of whole lines: O_APPEND keeps it in one piece next to
	// another process appending, and a reader never sees half a batch
	// line.
	if _, err := f.Write(lines); err != nil {
		s.closeOutbox()
		return fail(fmt.Errorf("logsender: append outbox: %w", err))
	}
	for _, i := range ok {
		m := ms[i]
		what := m.Subject
		if m.TemplateID != "" {
			what = "template " + m.TemplateID
		}
		s.logger.Info("email (log provider, not sent)",
			"send_id", m.SendID, "to", Mask(m.To.Email), "subject", what, "tags", strings.Join(m.Tags, ","),
			"file", filepath.Join(s.dir, OutboxFile))
		res[i] = connectors.Result{Provider: Name, ProviderMessageID: "log-" + m.SendID}
	}
	return res, errs
}

// outbox returns outbox.log open for appending, reopening it when the
// file at the path is no longer the one open (rotated, deleted,
// rewritten by Forget). Call with mu held.
func (s *Sender) outbox() (*os.File, error) {
	path := filepath.Join(s.dir, OutboxFile)
	if s.out != nil {
		if fi, err := os.Stat(path); err == nil && os.SameFile(fi, s.outInfo) {
			return s.out, nil
		}
		s.closeOutbox()
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("logsender: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("logsender: open outbox: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("logsender: open outbox: %w", err)
	}
	s.out, s.outInfo = f, fi
	return f, nil
}

// closeOutbox drops the open outbox.log. Call with mu held.
func (s *Sender) closeOutbox() {
	if s.out != nil {
		_ = s.out.Close()
		s.out, s.outInfo = nil, nil
	}
}

// Close closes outbox.log; a later Send opens it again.
func (s *Sender) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return nil
	}
	err := s.out.Close()
	s.out, s.outInfo = nil, nil
	return err
}

// Mask hides most of an address's local part: ann@example.com →
// a***@example.com.
func Mask(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return "***"
	}
	_, n := utf8.DecodeRuneInString(local)
	return local[:n] + "***@" + domain
}

// Forget erases a person from what the log provider wrote: outbox.log
// lines addressed to any of emails or belonging to any of sendIDs, and
// those sends' HTML files. outbox.log is rewritten to a temporary file and
// renamed over, so a crash leaves either the old or the new file.
func (s *Sender) Forget(ctx context.Context, emails, sendIDs []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	drop := map[string]bool{}
	for _, e := range emails {
		drop["e:"+strings.ToLower(strings.TrimSpace(e))] = true
	}
	for _, id := range sendIDs {
		drop["s:"+id] = true
		if strings.ContainsAny(id, `/\`) || id == "" || id == "." || id == ".." {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, id+".html")); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("logsender: forget: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	path := filepath.Join(s.dir, OutboxFile)
	old, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logsender: forget: %w", err)
	}
	var keep bytes.Buffer
	removed := 0
	for _, line := range bytes.Split(old, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m connectors.Message
		if json.Unmarshal(line, &m) == nil && (drop["e:"+strings.ToLower(strings.TrimSpace(m.To.Email))] || drop["s:"+m.SendID]) {
			removed++
			continue
		}
		keep.Write(line)
		keep.WriteByte('\n')
	}
	if removed == 0 {
		return nil
	}
	tmp, err := os.CreateTemp(s.dir, ".outbox-*")
	if err != nil {
		return fmt.Errorf("logsender: forget: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(keep.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("logsender: forget: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("logsender: forget: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("logsender: forget: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("logsender: forget: %w", err)
	}
	s.closeOutbox() // it points at the old file
	return nil
}
