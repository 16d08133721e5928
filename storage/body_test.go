package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/s2"
	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
)

// sampleBodies are bodies of every kind a delivery brings: empty, below
// the compression threshold, compressible JSON, incompressible bytes.
func sampleBodies(t testing.TB) map[string][]byte {
	t.Helper()
	order, err := os.ReadFile(filepath.Join("testdata", "shopify_orders_create.json"))
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 40<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	return map[string][]byte{
		"empty":      {},
		"small":      []byte(`{"email":"ann@example.com"}`),
		"threshold":  bytes.Repeat([]byte("a"), bodyMinCompress),
		"order":      order,
		"random":     random,
		"binary":     append([]byte{bodyFrameS2, 0, 0, 0, 0}, order[:1000]...),
		"repetitive": bytes.Repeat([]byte(`{"k":"v"},`), 100_000), // 1 MB
	}
}

func TestBodyFrameRoundTrip(t *testing.T) {
	t.Parallel()
	for name, body := range sampleBodies(t) {
		frame, release := encodeBody(new(sync.Pool), body)
		got, err := decodeBody(frame)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s: round trip gave %d bytes, %v; want %d bytes", name, len(got), err, len(body))
		}
		switch {
		case name == "order" && (frame[0] != bodyFrameS2 || len(frame) > len(body)/3):
			t.Errorf("order: frame %#x of %d bytes for a %d-byte body, want S2 and under a third", frame[0], len(frame), len(body))
		case (name == "random" || name == "small" || name == "empty") && frame[0] != bodyFrameRaw:
			t.Errorf("%s: frame %#x, want raw (compression cannot help)", name, frame[0])
		}
		release()
	}
}

// Every layout a delivery was ever stored in reads back, and forgets and
// prunes with its body: plain JSON, header "\n" body, header with
// body_seq and an unframed body (before compression), and framed.
func TestDeliveryBodyLayouts(t *testing.T) {
	t.Parallel()
	db, path := openTestDB(t, Options{KeepRaw: true})
	ctx := context.Background()
	body := sampleBodies(t)["order"]
	mark := []byte("layouts@example.com")
	body = bytes.Replace(body, []byte("bob.norman@mail.example.com"), mark, 1)
	want := map[string][]byte{}
	for i, layout := range []string{"plain", "newline", "unframed", "framed"} {
		id := "d-" + layout
		b := append(bytes.Clone(body), strconv.Itoa(i)...)
		want[id] = b
		r := rec("r-"+layout, behavior.OrderPlaced, t0, string(mark))
		if layout == "framed" {
			if _, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: id, Source: "shopify", Body: b}, Records: []behavior.Record{r}}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		mustAppend(t, db, r)
		err := db.update(ctx, func(tx *bolt.Tx) error {
			d := Delivery{ID: id, Source: "shopify", ReceivedAt: t0}
			var v []byte
			switch layout {
			case "plain":
				d.Body = b
				return errors.Join(putJSON(tx.Bucket(bucketDeliveries), []byte(id), d), pointRecord(tx, r.ID, id))
			case "newline":
				h, err := encodeDeliveryHeader(d)
				if err != nil {
					return err
				}
				v = append(append(h, '\n'), b...)
			case "unframed":
				bodies := tx.Bucket(bucketDeliveryBodies)
				seq, err := bodies.NextSequence()
				if err != nil {
					return err
				}
				if err := bodies.Put(u64(seq), b); err != nil {
					return err
				}
				h, err := encodeDeliveryHeader(d)
				if err != nil {
					return err
				}
				v = append(h[:len(h)-1], `,"body_seq":`+strconv.FormatUint(seq, 10)+`}`...)
			}
			return errors.Join(tx.Bucket(bucketDeliveries).Put([]byte(id), v), pointRecord(tx, r.ID, id))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for id, b := range want {
		d, err := db.Delivery(ctx, id)
		if err != nil || !bytes.Equal(d.Body, b) || d.ID != id {
			t.Errorf("%s: %d bytes, %v", id, len(d.Body), err)
		}
	}
	// The compressed body does not hold the address in clear, yet
	// Forget finds it through the record and erases everything.
	p, err := db.ProfileByEmail(ctx, string(mark))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Forget(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	for id := range want {
		if _, err := db.Delivery(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s after forget: %v", id, err)
		}
	}
	if n := bodyCount(t, db); n != 0 {
		t.Errorf("%d bodies left after forget", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, mark) {
		t.Error("the address is still in the file after forget")
	}
}

// pointRecord sets a stored record's delivery, as the Append of the
// layout's time did.
func pointRecord(tx *bolt.Tx, recordID, deliveryID string) error {
	sr, _, err := getRecordTx(tx, []byte(recordID))
	if err != nil {
		return err
	}
	sr.D = deliveryID
	return putJSON(tx.Bucket(bucketRecords), []byte(recordID), sr)
}

// An orphan delivery (no records: an ignored topic) is found by content;
// compressed, it must be decompressed to be found: its frame does not hold
// the address in one piece.
func TestForgetFindsCompressedOrphan(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{KeepRaw: true})
	ctx := context.Background()
	// The address's first 13 bytes appear earlier, so S2 encodes it as a
	// back-reference plus a short literal.
	body := []byte(`{"note":"orphan@exampl","filler":"` + string(bytes.Repeat([]byte("0123456789"), 40)) + `","email":"Orphan@Example.com"}`)
	if _, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: "orphan", Source: "shopify", Topic: "orders/updated", Body: body}}); err != nil {
		t.Fatal(err)
	}
	frame := bytes.ToLower(storedFrame(t, db, "orphan"))
	if frame[0] != bodyFrameS2 || bytes.Contains(frame, []byte("orphan@example.com")) {
		t.Fatalf("frame %q: want S2 without the address in one piece", frame)
	}
	mustAppend(t, db, rec("o1", behavior.OrderPlaced, t0, "orphan@example.com"))
	p, err := db.ProfileByEmail(ctx, "orphan@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Forget(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Delivery(ctx, "orphan"); !errors.Is(err, ErrNotFound) {
		t.Errorf("orphan delivery after forget: %v", err)
	}
}

// storedFrame returns a copy of the value in delivery_bodies of delivery id.
func storedFrame(t *testing.T, db *DB, id string) []byte {
	t.Helper()
	var frame []byte
	err := db.view(context.Background(), func(tx *bolt.Tx) error {
		ref, err := parseDelivery(tx.Bucket(bucketDeliveries).Get([]byte(id)))
		if err != nil {
			return err
		}
		frame = bytes.Clone(tx.Bucket(bucketDeliveryBodies).Get(u64(ref.seq)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// Damaged frames on disk give an error naming the delivery, never a
// panic or a wrong body.
func TestDeliveryCorruptBody(t *testing.T) {
	t.Parallel()
	body := sampleBodies(t)["order"]
	good, release := encodeBody(new(sync.Pool), body)
	good = bytes.Clone(good)
	release()
	if good[0] != bodyFrameS2 {
		t.Fatalf("frame %#x, want S2", good[0])
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x55
		return b
	}
	block := good[5:]
	cases := map[string][]byte{
		"empty":          {},
		"unknown format": append([]byte{7}, good[1:]...),
		"short":          good[:3],
		"truncated":      good[:len(good)/2],
		"bad checksum":   flip(2),
		"corrupt length": flip(5),
		"corrupt block":  flip(len(good) / 2),
		"corrupt tail":   flip(len(good) - 1),
		// Damage the checksum cannot see (it was computed after): the
		// block itself must still be refused.
		"huge length, checksum fits":       s2Frame(binary.AppendUvarint(nil, 1<<40)),
		"over the limit, checksum fits":    s2Frame(append(binary.AppendUvarint(nil, maxBodyLen+1), block[1:]...)),
		"length off, checksum fits":        s2Frame(append(binary.AppendUvarint(nil, uint64(len(body)+1)), block[2:]...)),
		"block cut, checksum fits":         s2Frame(block[:len(block)-7]),
		"copy out of range, checksum fits": s2Frame([]byte{10, 0x0a, 0xff, 0xff}),
	}
	db, _ := openTestDB(t, Options{KeepRaw: true})
	ctx := context.Background()
	for name, frame := range cases {
		id := "d-" + name
		if _, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: id, Source: "shopify", Body: body}}); err != nil {
			t.Fatal(err)
		}
		err := db.update(ctx, func(tx *bolt.Tx) error {
			ref, err := parseDelivery(tx.Bucket(bucketDeliveries).Get([]byte(id)))
			if err != nil {
				return err
			}
			return tx.Bucket(bucketDeliveryBodies).Put(u64(ref.seq), frame)
		})
		if err != nil {
			t.Fatal(err)
		}
		d, err := db.Delivery(ctx, id)
		if !errors.Is(err, errBodyCorrupt) || !strings.Contains(err.Error(), id) {
			t.Errorf("%s: got %d bytes, error %v; want errBodyCorrupt naming the delivery", name, len(d.Body), err)
		} else if strings.HasSuffix(name, "checksum fits") && strings.Contains(err.Error(), errBodyCorrupt.Error()+": checksum") {
			t.Errorf("%s: %v; want the block refused, not its checksum", name, err)
		}
	}
	// A layout from a later version is refused too, header intact.
	if _, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: "d-future", Source: "shopify", Body: body}}); err != nil {
		t.Fatal(err)
	}
	err := db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveries)
		v := bytes.Replace(b.Get([]byte("d-future")), []byte(`"body_fmt":1`), []byte(`"body_fmt":9`), 1)
		return b.Put([]byte("d-future"), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Delivery(ctx, "d-future"); err == nil || !strings.Contains(err.Error(), "unknown body_fmt 9") {
		t.Errorf("future layout: %v", err)
	}
	// A damaged or unknown body does not stop Prune from removing it.
	if _, err := db.Prune(ctx, db.now().Add(1)); err != nil {
		t.Fatal(err)
	}
	if n := bodyCount(t, db); n != 0 {
		t.Errorf("%d bodies left after prune", n)
	}
}

func TestIdentityKeyIs(t *testing.T) {
	t.Parallel()
	ids := []behavior.Identity{
		{Type: "email", Value: "a@b.c"},
		{Type: "customer", Namespace: "shopify/main", Value: "42"},
		{Type: "customer", Namespace: "shopify", Value: "main:42"},
		{Type: "customer", Namespace: "shopify/main:4", Value: "2"},
		{Type: "anonymous", Value: "shopify-order:1"},
		{Type: "anonymous", Value: ""},
		{Type: "", Value: ""},
		{Type: "email", Namespace: "x", Value: ""},
	}
	for _, x := range ids {
		for _, y := range ids {
			if got, want := identityKeyIs(x, y.Key()), x.Key() == y.Key(); got != want {
				t.Errorf("identityKeyIs(%+v, %q) = %v, want %v", x, y.Key(), got, want)
			}
		}
		for _, k := range []string{"", ":", "email", "email:", "customer:shopify/main:", "xcustomer:shopify/main:42"} {
			if got, want := identityKeyIs(x, k), x.Key() == k; got != want {
				t.Errorf("identityKeyIs(%+v, %q) = %v, want %v", x, k, got, want)
			}
		}
	}
}

// s2Frame frames block as S2 with a checksum that fits, whatever the block.
func s2Frame(block []byte) []byte {
	out := []byte{bodyFrameS2, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(out[1:5], crc32.Checksum(block, crc32c))
	return append(out, block...)
}

// FuzzDecodeBody: stored frames are bytes read from disk, so decoding must
// survive any of them, also blocks whose checksum fits (the fuzzer could
// never guess one); and every body encodes to a frame that decodes to it.
func FuzzDecodeBody(f *testing.F) {
	for _, b := range sampleBodies(f) {
		if len(b) > 64<<10 {
			continue
		}
		frame, release := encodeBody(new(sync.Pool), b)
		f.Add(bytes.Clone(frame))
		release()
		f.Add(b)
	}
	f.Add([]byte{bodyFrameS2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		if body, err := decodeBody(data); err != nil {
			if !errors.Is(err, errBodyCorrupt) {
				t.Fatalf("error %v does not wrap errBodyCorrupt", err)
			}
		} else if data[0] == bodyFrameRaw && !bytes.Equal(body, data[1:]) {
			t.Fatal("raw frame decoded to other bytes")
		}
		// The same bytes as a block with a fitting checksum, unless it
		// claims more than 1 MiB (allowed, but slow to allocate here).
		if n, err := s2.DecodedLen(data); err != nil || n <= 1<<20 {
			if _, err := decodeBody(s2Frame(data)); err != nil && !errors.Is(err, errBodyCorrupt) {
				t.Fatalf("error %v does not wrap errBodyCorrupt", err)
			}
		}
		frame, release := encodeBody(new(sync.Pool), data)
		defer release()
		got, err := decodeBody(frame)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip of %d bytes: %d bytes, %v", len(data), len(got), err)
		}
	})
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "0123abcdef", "a\"b", `a\b`, "<&>", "ü", "\x00\n", "\u2028", "plain id 42", "\xff"} {
		want, _ := json.Marshal(s)
		got, err := appendJSONString([]byte("x"), s)
		if err != nil || string(got) != "x"+string(want) {
			t.Errorf("appendJSONString(%q) = %s, %v; want x%s", s, got, err, want)
		}
	}
}
