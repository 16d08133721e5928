package importer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nudge-email/nudge/behavior"
)

// errLineTooLong reports a line over maxLine bytes.
var errLineTooLong = fmt.Errorf("line longer than %d bytes", maxLine)

// readLine returns the next line without its end-of-line. A line over
// maxLine is skipped through its newline and reported as errLineTooLong,
// so one monster line costs that line only.
func readLine(r *bufio.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > maxLine {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, errLineTooLong
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return bytes.TrimRight(buf, "\r\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return bytes.TrimRight(buf, "\r"), nil
		default:
			return nil, err
		}
	}
}

// readNDJSON reads records-ndjson (CONTRACT §4): one behavior record as a
// JSON object per line, with only kind, at and one identity required.
// Blank lines are ignored; unknown fields are errors, since a misspelt
// field would otherwise vanish silently.
func readNDJSON(r *bufio.Reader, b *batcher) error {
	var buf []byte
	for line := max(b.opts.FirstLine, 1); ; line++ {
		text, err := readLine(r, buf)
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, errLineTooLong):
			b.row()
			b.reject(line, 1, "%v", err)
			continue
		case err != nil:
			return fmt.Errorf("import: %s: %w", b.file, err)
		}
		buf = text[:0]
		if line == max(b.opts.FirstLine, 1) {
			text = trimBOM(text)
		}
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		b.row()
		rec, err := decodeRecord(text)
		if err != nil {
			b.reject(line, 1, "%v", err)
			continue
		}
		if err := b.add(line, 1, "", rec); err != nil {
			return err
		}
	}
}

// decodeRecord parses one records-ndjson line strictly.
func decodeRecord(line []byte) (behavior.Record, error) {
	var rec behavior.Record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return behavior.Record{}, jsonError(err)
	}
	if dec.More() {
		return behavior.Record{}, fmt.Errorf("invalid JSON: more than one value on the line")
	}
	return rec, nil
}

// jsonError rewords encoding/json's errors for people who wrote the line.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Errorf("field %q: expected %s, got JSON %s", typ.Field, typ.Type, typ.Value)
		}
		return fmt.Errorf("expected a JSON object, got %s", typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("invalid JSON: the line ends inside a value")
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.Contains(msg, "parsing time") {
		return fmt.Errorf("time is not RFC 3339 (e.g. 2024-01-05T10:11:12Z): %s", msg)
	}
	if strings.HasPrefix(msg, "unknown field") {
		return fmt.Errorf("%s (records-ndjson fields: id, kind, source, store, at, email, customer_id, anonymous_id, value, currency, items, query, url, seconds, refs, attrs, consent, person, received_at)", msg)
	}
	return fmt.Errorf("invalid record: %s", msg)
}
