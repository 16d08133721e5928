package storage

import (
	"bytes"
	"context"
	"fmt"
	json "github.com/goccy/go-json"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
)

// maxIDLen bounds record and delivery ids: they are bbolt keys and appear
// in several composite index keys.
const maxIDLen = 200

// maxIdentityLen bounds identity values, which become bbolt keys.
const maxIdentityLen = 512

// scanChunk is how many keys a paged scan reads per read transaction, so a
// long scan never pins old pages (and blocks their reuse) for its duration.
const scanChunk = 1000

// Bounds of an occurred-at time: timeKey can only order 1970 … 2262, and
// anything outside a narrower window is a connector bug, not a customer event.
var (
	minRecordTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxRecordTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// storedRecord is the value of the records bucket: the record plus what the
// store needs to find the record's other traces without scanning — the
// profile (for rec_by_profile) and the raw delivery (for Forget and Prune).
type storedRecord struct {
	R behavior.Record `json:"r"`
	P string          `json:"p,omitempty"`
	D string          `json:"d,omitempty"`
}

// briefRecord is the part of a stored record RecordQuery.Brief returns.
// Decoding skips the rest (attributes, person, consent, query, URL), which
// is most of a tracked page view's cost.
type briefRecord struct {
	R struct {
		ID         string            `json:"id"`
		Kind       behavior.Kind     `json:"kind"`
		Source     string            `json:"source,omitempty"`
		Store      string            `json:"store,omitempty"`
		At         time.Time         `json:"at"`
		ReceivedAt time.Time         `json:"received_at,omitzero"`
		Value      int64             `json:"value,omitempty"`
		Currency   string            `json:"currency,omitempty"`
		Items      []behavior.Item   `json:"items,omitempty"`
		Seconds    float64           `json:"seconds,omitempty"`
		Refs       map[string]string `json:"refs,omitempty"`
	} `json:"r"`
}

// record is b as a behavior.Record.
func (b *briefRecord) record() behavior.Record {
	r := &b.R
	return behavior.Record{ID: r.ID, Kind: r.Kind, Source: r.Source, Store: r.Store, At: r.At, ReceivedAt: r.ReceivedAt,
		Value: r.Value, Currency: r.Currency, Items: r.Items, Seconds: r.Seconds, Refs: r.Refs}
}

// recordKind is the kind of a stored record, read without decoding the
// rest of it beyond skipping.
type recordKind struct {
	R struct {
		Kind behavior.Kind `json:"kind"`
	} `json:"r"`
}

// storedKind reads the kind of a stored record from the start of its JSON,
// where encodeStoredRecord puts it ({"r":{"id":"…","kind":"…"), without
// decoding anything; ok is false for any other layout, which the caller
// decodes instead.
func storedKind(raw []byte) (behavior.Kind, bool) {
	rest, ok := bytes.CutPrefix(raw, []byte(`{"r":{"id":"`))
	if !ok {
		return "", false
	}
	// Skip the id: a JSON string, whose escapes hide no bare quote.
	i := 0
	for ; i < len(rest) && rest[i] != '"'; i++ {
		if rest[i] == '\\' {
			i++
		}
	}
	if i >= len(rest) {
		return "", false
	}
	rest, ok = bytes.CutPrefix(rest[i+1:], []byte(`,"kind":"`))
	if !ok {
		return "", false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", false
	}
	return behavior.Kind(rest[:end]), true
}

// viewKinds are the kinds whose items say a person looked at or bought a
// product: they feed product_views and fill the catalog.
func viewKind(k behavior.Kind) bool {
	switch k {
	case behavior.ProductViewed, behavior.CartUpdated, behavior.CheckoutStarted, behavior.OrderPlaced:
		return true
	}
	return false
}

// anonymousKind reports the kinds that may carry no identity: catalog facts
// and what the store derives from them.
func anonymousKind(k behavior.Kind) bool {
	switch k {
	case behavior.ProductUpdated, behavior.PriceDropped, behavior.BackInStock:
		return true
	}
	return false
}

// plausibleEmail is deliberately loose: it catches values that are clearly
// not addresses (names, ids, empty local parts) without rejecting unusual
// but deliverable ones.
func plausibleEmail(e string) bool {
	if len(e) > 254 {
		return false
	}
	at := strings.IndexByte(e, '@')
	if at <= 0 || at == len(e)-1 || strings.Count(e, "@") != 1 {
		return false
	}
	if strings.HasPrefix(e[at+1:], ".") || strings.HasSuffix(e, ".") {
		return false
	}
	for _, c := range e {
		if c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',' || c == ';' || c == '"' {
			return false
		}
	}
	return true
}

// ValidateRecord checks a record as Append will, without storing it, so
// callers that batch outside input (the importer) can reject a bad line by
// its number before it fails a whole batch. Email must already be
// normalized; the error says what is wrong in records-ndjson's field names.
func ValidateRecord(r *behavior.Record) error { return validateRecord(r) }

// validateRecord checks one normalized record; the error says why.
func validateRecord(r *behavior.Record) error {
	switch {
	case r.Kind == "":
		return fmt.Errorf("no kind")
	case !r.Kind.Valid():
		return fmt.Errorf("unknown kind %q", r.Kind)
	case r.At.IsZero():
		return fmt.Errorf("no time (at)")
	case r.At.Before(minRecordTime) || !r.At.Before(maxRecordTime):
		return fmt.Errorf("time %s out of range (1970 to 2199)", r.At.Format(time.RFC3339))
	case len(r.ID) > maxIDLen:
		return fmt.Errorf("id of %d bytes (max %d)", len(r.ID), maxIDLen)
	case r.Email != "" && !plausibleEmail(r.Email):
		return fmt.Errorf("email %q is not an address", r.Email)
	}
	ids := r.Identities()
	if len(ids) == 0 && !anonymousKind(r.Kind) {
		return fmt.Errorf("no identity (email, customer_id or anonymous_id)")
	}
	for _, id := range ids {
		if len(id.Value) > maxIdentityLen {
			return fmt.Errorf("%s identity of %d bytes (max %d)", id.Type, len(id.Value), maxIdentityLen)
		}
	}
	for _, it := range r.Items {
		if len(it.ProductID) > maxIDLen || strings.IndexByte(it.ProductID, 0) >= 0 {
			return fmt.Errorf("bad product_id %q", it.ProductID)
		}
	}
	return r.CheckAmounts()
}

// preparedIngest is an Ingest after validation and filling, computed once
// outside the group commit so the serialized part stays short.
type preparedIngest struct {
	records  []behavior.Record
	encoded  [][]byte // records[i] as JSON, so a value JSON cannot hold is refused up front
	delivery *Delivery
	header   []byte // the delivery without its body, encoded (see putDeliveryTx)
	body     []byte // the delivery's body, framed (see encodeBody)
	// release gives body's buffer back once no transaction refers to it.
	release func()
	// evaluateSince: see Ingest.EvaluateSince.
	evaluateSince time.Time
	// plans are the records' profile updates worked out beforehand
	// (planProfiles); nil, or nil for a record, when there is none.
	plans []*profilePlan
}

// prepareIngest validates and fills copies of the caller's records; the
// caller's values are never changed.
func (db *DB) prepareIngest(in Ingest) (preparedIngest, error) {
	now := db.now()
	p := preparedIngest{records: make([]behavior.Record, len(in.Records)), encoded: make([][]byte, len(in.Records)), evaluateSince: in.EvaluateSince}
	for i, r := range in.Records {
		r.Email = behavior.NormalizeEmail(r.Email)
		r.At = r.At.UTC()
		if err := validateRecord(&r); err != nil {
			return preparedIngest{}, fmt.Errorf("%w: record %d (%s %q): %s", ErrInvalid, i, r.Kind, r.ID, err)
		}
		// The id is derived after normalizing, so the same event gets the
		// same id whatever case or zone offset a source used.
		if r.ID == "" {
			r.ID = behavior.ContentID(r)
		}
		if r.ReceivedAt.IsZero() {
			r.ReceivedAt = now
		}
		r.ReceivedAt = r.ReceivedAt.UTC()
		raw, err := json.Marshal(r)
		if err != nil {
			// NaN seconds, an attribute JSON cannot hold: refuse it here
			// rather than fail the shared group commit.
			return preparedIngest{}, fmt.Errorf("%w: record %d (%s %q): %v", ErrInvalid, i, r.Kind, r.ID, err)
		}
		p.records[i], p.encoded[i] = r, raw
	}
	if in.Delivery != nil && db.opts.KeepRaw {
		d := *in.Delivery
		if d.ID == "" {
			d.ID = behavior.DeriveID("delivery", d.Source, d.Store, d.Topic, string(d.Body))
		}
		if len(d.ID) > maxIDLen {
			return preparedIngest{}, fmt.Errorf("%w: delivery id of %d bytes (max %d)", ErrInvalid, len(d.ID), maxIDLen)
		}
		if d.ReceivedAt.IsZero() {
			d.ReceivedAt = now
		}
		d.ReceivedAt = d.ReceivedAt.UTC()
		h, err := encodeDeliveryHeader(d)
		if err != nil {
			return preparedIngest{}, fmt.Errorf("encode delivery: %w", err)
		}
		p.delivery, p.header = &d, h
		p.body, p.release = encodeBody(&db.bodyBufs, d.Body)
	}
	return p, nil
}

// Append stores one ingest atomically; see Records.Append.
func (db *DB) Append(ctx context.Context, in Ingest) (AppendResult, error) {
	p, err := db.prepareIngest(in)
	if err != nil {
		return AppendResult{}, fmt.Errorf("storage: append: %w", err)
	}
	if p.release != nil {
		// batch returns only when no transaction runs appendTx(p) any more.
		defer p.release()
	}
	if len(p.records) == 0 && p.delivery == nil {
		return AppendResult{Profiles: map[string]string{}}, nil
	}
	var res AppendResult
	err = db.batchIngest(ctx, func(tx *bolt.Tx) error {
		// Batch may run this more than once (when another caller's
		// function fails, the rest are retried): build the result afresh
		// each time and let only the committed run's result escape.
		r, err := db.appendTx(tx, p)
		res = r
		return err
	})
	if err != nil {
		return AppendResult{}, fmt.Errorf("storage: append: %w", err)
	}
	return res, nil
}

// appendState is one run of appendTx.
type appendState struct {
	db  *DB
	tx  *bolt.Tx
	now time.Time
	// merged maps profiles merged away during this run to their survivor,
	// so results computed before a merge can be corrected at the end.
	merged map[string]string
	seen   map[string]bool
	res    AppendResult
	// loaded is the profile applyToProfile's mergeable step last decoded
	// (a private copy), so the step after it need not decode it again.
	loaded loadedProfile
}

// loadedProfile is a decoded profile and its key (zero: none).
type loadedProfile struct {
	id string
	p  Profile
}

func (db *DB) appendTx(tx *bolt.Tx, p preparedIngest) (AppendResult, error) {
	st := &appendState{
		db: db, tx: tx, now: db.now(),
		merged: map[string]string{},
		seen:   map[string]bool{},
		res:    AppendResult{Profiles: map[string]string{}},
	}
	deliveryID := ""
	if p.delivery != nil {
		deliveryID = p.delivery.ID
	}
	for i := range p.records {
		r := p.records[i]
		var plan *profilePlan
		if i < len(p.plans) {
			plan = p.plans[i]
		}
		if err := st.appendOne(r, p.encoded[i], deliveryID, plan); err != nil {
			return AppendResult{}, fmt.Errorf("record %q: %w", r.ID, err)
		}
	}
	// A delivery whose records were all duplicates is a redelivery: the
	// first copy (or nothing, if it came with another id) is kept, so no
	// raw body exists that no record points at — Forget finds deliveries
	// through records. An ingest without records (an ignored topic) is
	// still kept, as "200 means persisted".
	if p.delivery != nil && (len(st.res.New) > 0 || len(p.records) == 0) {
		if tx.Bucket(bucketDeliveries).Get([]byte(p.delivery.ID)) == nil {
			if err := putDeliveryTx(tx, p.delivery.ID, p.header, p.body); err != nil {
				return AppendResult{}, fmt.Errorf("put delivery: %w", err)
			}
		}
	}
	specs := make([]JobSpec, 0, len(st.res.New))
	for _, r := range st.res.New {
		pid, ok := st.res.Profiles[r.ID]
		if ok {
			pid = st.survivor(pid)
			st.res.Profiles[r.ID] = pid
		}
		if !p.evaluateSince.IsZero() && r.At.Before(p.evaluateSince) {
			continue
		}
		payload, err := json.Marshal(EvaluatePayload{RecordID: r.ID, ProfileID: pid})
		if err != nil {
			return AppendResult{}, fmt.Errorf("encode evaluate payload: %w", err)
		}
		specs = append(specs, JobSpec{Kind: JobEvaluate, Payload: payload, DueAt: st.now})
	}
	if _, err := db.enqueueJobsTx(tx, specs); err != nil {
		return AppendResult{}, fmt.Errorf("enqueue evaluate: %w", err)
	}
	return st.res, nil
}

// survivor follows this run's merges from id to the profile that holds it now.
func (st *appendState) survivor(id string) string {
	for i := 0; i < 64; i++ {
		next, ok := st.merged[id]
		if !ok {
			return id
		}
		id = next
	}
	return id
}

// exists reports whether a record id is stored or already taken in this run.
func (st *appendState) exists(id string) bool {
	return st.seen[id] || st.tx.Bucket(bucketRecords).Get([]byte(id)) != nil
}

// appendOne stores one record unless its id is taken, with everything it
// implies: profile, catalog, product views and derived records. plan, when
// not nil, is its profile update worked out beforehand.
func (st *appendState) appendOne(r behavior.Record, encoded []byte, deliveryID string, plan *profilePlan) error {
	if st.exists(r.ID) {
		st.res.Duplicates++
		return nil
	}
	pid := ""
	if ids := r.Identities(); len(ids) > 0 {
		var err error
		if pid, err = st.applyToProfile(r, ids, plan); err != nil {
			return err
		}
	}
	var derived []behavior.Record
	switch {
	case r.Kind == behavior.ProductUpdated:
		var err error
		if derived, err = applyCatalogUpdate(st.tx, r, st.now); err != nil {
			return fmt.Errorf("catalog: %w", err)
		}
	case viewKind(r.Kind):
		if err := fillCatalog(st.tx, r); err != nil {
			return fmt.Errorf("catalog: %w", err)
		}
		if pid != "" {
			if err := putProductViews(st.tx, r, pid); err != nil {
				return fmt.Errorf("product views: %w", err)
			}
		}
	}
	if err := st.store(r, encoded, pid, deliveryID); err != nil {
		return err
	}
	for _, d := range derived {
		if st.exists(d.ID) {
			continue
		}
		if err := st.store(d, nil, "", ""); err != nil {
			return err
		}
	}
	return nil
}

// store writes a new record and its index entries and notes it in the result.
func (st *appendState) store(r behavior.Record, encoded []byte, pid, deliveryID string) error {
	if err := putRecordTx(st.tx, r, encoded, pid, deliveryID); err != nil {
		return err
	}
	st.seen[r.ID] = true
	st.res.New = append(st.res.New, r)
	if pid != "" {
		st.res.Profiles[r.ID] = pid
	}
	return nil
}

// recByTimeKey is u64 occurred-at ns | u64 received-at ns | record id,
// with timeEntryV1 as its value. Sources stamp events to the second
// (Shopify, Stripe, SendGrid), so at a few thousand webhooks a second the
// records of one second used to sort by id, a hash: each landed on a leaf
// of its own, ~0.7 pages per order (bench/README.md, "Morning pass").
// Within a second they now sort by arrival and append. Entries written
// before, u64 occurred-at ns | record id with no value, stay valid:
// recordIDOfTimeEntry reads both, and deleteRecordTx removes either.
func recByTimeKey(at, receivedAt time.Time, id string) []byte {
	k := make([]byte, 0, 16+len(id))
	k = append(k, timeKey(at)...)
	k = append(k, timeKey(receivedAt)...)
	return append(k, id...)
}

// legacyRecByTimeKey is a rec_by_time entry's key as written before
// recByTimeKey ordered a second's records by arrival.
func legacyRecByTimeKey(at time.Time, id string) []byte {
	return append(timeKey(at), id...)
}

// timeEntryV1 is the one-byte value of a rec_by_time entry keyed by
// recByTimeKey; legacy entries have none. A record id may hold any byte,
// so the layout cannot be told from the key.
const timeEntryV1 byte = 1

// recordIDOfTimeEntry is the id of the record a rec_by_time entry (key k,
// value v) indexes, in either layout; nil for a malformed entry.
func recordIDOfTimeEntry(k, v []byte) []byte {
	if len(v) == 1 && v[0] == timeEntryV1 {
		if len(k) <= 16 {
			return nil
		}
		return k[16:]
	}
	if len(k) <= 8 {
		return nil
	}
	return k[8:]
}

// profilePrefix is profile id | 0x00, the prefix of every per-profile index.
func profilePrefix(pid string) []byte {
	return append([]byte(pid), 0)
}

// recByProfileKey is profile id | 0x00 | u64 occurred-at ns | record id.
func recByProfileKey(pid string, at time.Time, id string) []byte {
	k := make([]byte, 0, len(pid)+1+8+len(id))
	k = append(k, pid...)
	k = append(k, 0)
	k = append(k, timeKey(at)...)
	return append(k, id...)
}

// putRecordTx writes a new record and its time and profile indexes.
// encoded is r as JSON when the caller has it (nil: encode here).
func putRecordTx(tx *bolt.Tx, r behavior.Record, encoded []byte, pid, deliveryID string) error {
	val, err := encodeStoredRecord(r, encoded, pid, deliveryID)
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	if err := tx.Bucket(bucketRecords).Put([]byte(r.ID), val); err != nil {
		return fmt.Errorf("put record: %w", err)
	}
	if err := tx.Bucket(bucketRecByTime).Put(recByTimeKey(r.At, r.ReceivedAt, r.ID), []byte{timeEntryV1}); err != nil {
		return fmt.Errorf("index record by time: %w", err)
	}
	if pid != "" {
		if err := tx.Bucket(bucketRecByProfile).Put(recByProfileKey(pid, r.At, r.ID), nil); err != nil {
			return fmt.Errorf("index record by profile: %w", err)
		}
	}
	return nil
}

// encodeStoredRecord builds the storedRecord JSON around an already
// encoded record, sparing the group commit a second encoding of it.
func encodeStoredRecord(r behavior.Record, encoded []byte, pid, deliveryID string) ([]byte, error) {
	if encoded == nil {
		return json.Marshal(storedRecord{R: r, P: pid, D: deliveryID})
	}
	out := make([]byte, 0, len(encoded)+len(pid)+len(deliveryID)+24)
	out = append(out, `{"r":`...)
	out = append(out, encoded...)
	for _, f := range []struct{ name, v string }{{"p", pid}, {"d", deliveryID}} {
		if f.v == "" {
			continue
		}
		out = append(out, `,"`+f.name+`":`...)
		var err error
		if out, err = appendJSONString(out, f.v); err != nil {
			return nil, err
		}
	}
	return append(out, '}'), nil
}

// appendJSONString appends s as a JSON string, as json.Marshal writes it.
// Ids are nearly always hex; only others go through encoding/json.
func appendJSONString(out []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			return append(out, q...), err
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"'), nil
}

// getRecordTx reads a stored record.
func getRecordTx(tx *bolt.Tx, id []byte) (storedRecord, bool, error) {
	var sr storedRecord
	ok, err := getJSON(tx.Bucket(bucketRecords), id, &sr)
	return sr, ok, err
}

// Record returns one record by id.
func (db *DB) Record(ctx context.Context, id string) (behavior.Record, error) {
	var sr storedRecord
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var ok bool
		var err error
		sr, ok, err = getRecordTx(tx, []byte(id))
		if err == nil && !ok {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return behavior.Record{}, fmt.Errorf("storage: record %q: %w", id, err)
	}
	return sr.R, nil
}

// Delivery returns one raw delivery.
func (db *DB) Delivery(ctx context.Context, id string) (Delivery, error) {
	var d Delivery
	err := db.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDeliveries).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		ref, err := parseDelivery(v)
		if err != nil {
			return err
		}
		body, fresh, err := ref.body(tx)
		if err != nil {
			return err
		}
		if !fresh {
			body = bytes.Clone(body)
		}
		d = ref.Delivery
		d.Body = body
		return nil
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("storage: delivery %q: %w", id, err)
	}
	return d, nil
}

// A stored delivery is two values: its JSON without the body, with
// "body_seq" and "body_fmt" added, in deliveries under its id; and the
// body, framed and usually compressed (see encodeBody), in delivery_bodies
// under that sequence number. Plain JSON would base64 the body, a third
// more bytes to write and fsync on the webhook path; and a body kept under
// the (random) delivery id would make every insert rewrite the bodies
// sharing its leaf (see bucketDeliveryBodies).
//
// Older files hold, under the id, one of: the JSON with "body_seq" but no
// "body_fmt", its body stored raw (unframed) in delivery_bodies; the JSON
// without the body, "\n", then the raw body (encoding/json never emits a
// raw newline, so the first one ends the header); or plain Delivery JSON.
// All are still read and deleted.

// storedDelivery is the JSON under a delivery's id.
type storedDelivery struct {
	Delivery
	BodySeq uint64 `json:"body_seq,omitempty"`
	// BodyFmt is bodyFmtFramed when the body in delivery_bodies is framed;
	// 0: stored as received, before framing existed.
	BodyFmt int `json:"body_fmt,omitempty"`
}

// encodeDeliveryHeader encodes d without its body and without body_seq,
// outside the group commit; putDeliveryTx adds the sequence.
func encodeDeliveryHeader(d Delivery) ([]byte, error) {
	d.Body = nil
	return json.Marshal(d)
}

// putDeliveryTx stores a delivery: the framed body (from encodeBody) under
// the next sequence of delivery_bodies, header (from encodeDeliveryHeader)
// with body_seq and body_fmt under id.
func putDeliveryTx(tx *bolt.Tx, id string, header, framed []byte) error {
	if len(framed) == 0 {
		return fmt.Errorf("delivery %s: body not framed", id)
	}
	bodies := appendBucket(tx, bucketDeliveryBodies)
	seq, err := bodies.NextSequence()
	if err != nil {
		return err
	}
	if err := bodies.Put(u64(seq), framed); err != nil {
		return err
	}
	if len(header) < 2 || header[len(header)-1] != '}' {
		return fmt.Errorf("delivery header %q is not a JSON object", header)
	}
	v := make([]byte, 0, len(header)+48)
	v = append(v, header[:len(header)-1]...)
	v = append(v, `,"body_seq":`...)
	v = strconv.AppendUint(v, seq, 10)
	v = append(v, `,"body_fmt":`...)
	v = strconv.AppendInt(v, bodyFmtFramed, 10)
	v = append(v, '}')
	return tx.Bucket(bucketDeliveries).Put([]byte(id), v)
}

// deliveryRef is a decoded deliveries value: the delivery without its body,
// and where the body is.
type deliveryRef struct {
	Delivery        // Body is nil
	inline   []byte // the body of the legacy layouts, which keep it here
	seq      uint64 // else its key in delivery_bodies
	layout   int    // and its layout there: 0 (unframed) or bodyFmtFramed
}

// parseDelivery decodes a stored delivery value of any layout without
// reading its body. inline may point into v.
func parseDelivery(v []byte) (deliveryRef, error) {
	if i := bytes.IndexByte(v, '\n'); i >= 0 {
		var d Delivery
		if err := json.Unmarshal(v[:i], &d); err != nil {
			return deliveryRef{}, fmt.Errorf("decode delivery: %w", err)
		}
		d.Body = nil
		return deliveryRef{Delivery: d, inline: v[i+1:]}, nil
	}
	var sd storedDelivery
	if err := json.Unmarshal(v, &sd); err != nil {
		return deliveryRef{}, fmt.Errorf("decode delivery: %w", err)
	}
	ref := deliveryRef{Delivery: sd.Delivery, seq: sd.BodySeq, layout: sd.BodyFmt}
	if sd.BodySeq == 0 {
		// Plain Delivery JSON: the body is inside, already a copy.
		ref.inline = sd.Body
	}
	ref.Body = nil
	return ref, nil
}

// body returns the delivery's body. Unless fresh, it is a view into the
// transaction's memory (or the value parseDelivery read), valid only as
// long as that is.
func (r deliveryRef) body(tx *bolt.Tx) (body []byte, fresh bool, err error) {
	if r.seq == 0 {
		return r.inline, false, nil
	}
	v := tx.Bucket(bucketDeliveryBodies).Get(u64(r.seq))
	if v == nil {
		return nil, false, fmt.Errorf("decode delivery %s: body %d missing", r.ID, r.seq)
	}
	switch r.layout {
	case 0:
		return v, false, nil
	case bodyFmtFramed:
	default:
		// Written by a later version; its header still reads, prunes
		// and deletes.
		return nil, false, fmt.Errorf("decode delivery %s: body %d: %w: unknown body_fmt %d", r.ID, r.seq, errBodyCorrupt, r.layout)
	}
	body, err = decodeBody(v)
	if err != nil {
		return nil, false, fmt.Errorf("decode delivery %s: body %d: %w", r.ID, r.seq, err)
	}
	return body, len(v) > 0 && v[0] != bodyFrameRaw, nil
}

// deleteDeliveryTx removes a stored delivery and its body, if present.
func deleteDeliveryTx(tx *bolt.Tx, id []byte) error {
	b := tx.Bucket(bucketDeliveries)
	v := b.Get(id)
	if v == nil {
		return nil
	}
	if bytes.IndexByte(v, '\n') < 0 {
		var sd struct {
			BodySeq uint64 `json:"body_seq"`
		}
		if err := json.Unmarshal(v, &sd); err != nil {
			return fmt.Errorf("decode delivery %s: %w", id, err)
		}
		if sd.BodySeq != 0 {
			if err := tx.Bucket(bucketDeliveryBodies).Delete(u64(sd.BodySeq)); err != nil {
				return err
			}
		}
	}
	return b.Delete(id)
}

// boundKey encodes a query bound; the zero time means the start of time.
func boundKey(t time.Time) []byte {
	if t.IsZero() || t.Before(minRecordTime) {
		return u64(0)
	}
	if !t.Before(maxRecordTime) {
		return timeKey(maxRecordTime)
	}
	return timeKey(t)
}

// RecordsByProfile returns a profile's records in time order (newest first
// with q.Newest). Ids of merged profiles resolve to the survivor; an unknown
// profile has no records.
func (db *DB) RecordsByProfile(ctx context.Context, profileID string, q RecordQuery) ([]behavior.Record, error) {
	kinds := map[behavior.Kind]bool{}
	for _, k := range q.Kinds {
		kinds[k] = true
	}
	var out []behavior.Record
	err := db.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		pid, ok := resolveProfileTx(tx, profileID)
		if !ok {
			return nil
		}
		prefix := profilePrefix(pid)
		lo := append(append([]byte(nil), prefix...), boundKey(q.Since)...)
		var hi []byte // exclusive
		if q.Until.IsZero() {
			hi = append([]byte(pid), 1)
		} else {
			hi = append(append([]byte(nil), prefix...), boundKey(q.Until)...)
		}
		c := tx.Bucket(bucketRecByProfile).Cursor()
		var k []byte
		step := c.Next
		if q.Newest {
			step = c.Prev
			if k, _ = c.Seek(hi); k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		} else {
			k, _ = c.Seek(lo)
		}
		records := tx.Bucket(bucketRecords)
		for ; k != nil && bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0; k, _ = step() {
			raw := records.Get(k[len(prefix)+8:])
			if raw == nil {
				continue
			}
			if len(kinds) > 0 {
				// Most of a profile's records are of other kinds (page
				// views, mostly): tell them by kind alone.
				kind, ok := storedKind(raw)
				if !ok {
					var rk recordKind
					if err := json.Unmarshal(raw, &rk); err != nil {
						return fmt.Errorf("decode record %q: %w", k[len(prefix)+8:], err)
					}
					kind = rk.R.Kind
				}
				if !kinds[kind] {
					continue
				}
			}
			var r behavior.Record
			if q.Brief {
				var b briefRecord
				if err := json.Unmarshal(raw, &b); err != nil {
					return fmt.Errorf("decode record %q: %w", k[len(prefix)+8:], err)
				}
				r = b.record()
			} else {
				var sr storedRecord
				if err := json.Unmarshal(raw, &sr); err != nil {
					return fmt.Errorf("decode record %q: %w", k[len(prefix)+8:], err)
				}
				r = sr.R
			}
			out = append(out, r)
			if q.Limit > 0 && len(out) >= q.Limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: records of %q: %w", profileID, err)
	}
	return out, nil
}

// ScanRecords calls fn for every record with since <= At < until in
// occurred-at order. It reads in chunks, each in its own short read
// transaction, so fn may take as long as it likes; records appended
// meanwhile behind the cursor are not visited.
func (db *DB) ScanRecords(ctx context.Context, since, until time.Time, fn func(behavior.Record) error) error {
	var end []byte
	if !until.IsZero() {
		end = boundKey(until)
	}
	err := pageScan(ctx, db, bucketRecByTime, boundKey(since),
		func(k []byte) bool { return end != nil && bytes.Compare(k[:8], end) >= 0 },
		func(tx *bolt.Tx, k, v []byte) (behavior.Record, bool, error) {
			id := recordIDOfTimeEntry(k, v)
			if id == nil {
				return behavior.Record{}, false, nil
			}
			sr, ok, err := getRecordTx(tx, id)
			return sr.R, ok, err
		}, fn)
	if err != nil {
		return fmt.Errorf("storage: scan records: %w", err)
	}
	return nil
}

// pageScan walks bucket from key `from` (inclusive) until stop(k) says so,
// decoding up to scanChunk entries per read transaction and calling fn
// outside any transaction. After each chunk it re-seeks past the last key
// seen, so entries deleted meanwhile are skipped and the walk never pins
// a snapshot for its whole length, and releases the mapped pages it read.
func pageScan[T any](ctx context.Context, db *DB, bucket, from []byte, stop func(k []byte) bool,
	decode func(tx *bolt.Tx, k, v []byte) (T, bool, error), fn func(T) error) error {
	var last []byte
	for {
		var items []T
		done := false
		err := db.view(ctx, func(tx *bolt.Tx) error {
			items = items[:0]
			c := tx.Bucket(bucket).Cursor()
			var k, v []byte
			if last == nil {
				if len(from) == 0 {
					k, v = c.First()
				} else {
					k, v = c.Seek(from)
				}
			} else if k, v = c.Seek(last); k != nil && bytes.Equal(k, last) {
				k, v = c.Next()
			}
			n := 0
			for ; k != nil; k, v = c.Next() {
				if stop != nil && stop(k) {
					done = true
					return nil
				}
				if n == scanChunk {
					return nil
				}
				n++
				last = append(last[:0], k...)
				item, ok, err := decode(tx, k, v)
				if err != nil {
					return err
				}
				if ok {
					items = append(items, item)
				}
			}
			done = true
			return nil
		})
		if err != nil {
			return err
		}
		// A walk maps every page it reads into the process (resident until
		// memory runs short, see ReleaseMapped): a prune or a full scan at
		// start would map gigabytes faster than BoundMapped looks.
		if releaseSupported {
			if err := db.ReleaseMapped(ctx); err != nil {
				return err
			}
		}
		for _, it := range items {
			if err := fn(it); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
	}
}
