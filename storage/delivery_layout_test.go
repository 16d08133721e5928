package storage

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
)

// bodyCount counts the values of delivery_bodies.
func bodyCount(t *testing.T, db *DB) int {
	t.Helper()
	n := 0
	err := db.view(context.Background(), func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketDeliveryBodies).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Bodies live apart from their headers, under a sequence; deleting a
// delivery (Forget, Prune) deletes its body too.
func TestDeliveryBodiesStoredApart(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{KeepRaw: true})
	ctx := context.Background()
	body := []byte(`{"email":"ann@example.com"}`)
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB: overflow pages
	for i, b := range [][]byte{body, big, {}} {
		email := "ann@example.com"
		if i == 2 {
			email = "carl@example.com"
		}
		r := rec("r"+string(rune('a'+i)), behavior.OrderPlaced, t0.Add(time.Duration(i)*time.Hour), email)
		id := "d" + string(rune('a'+i))
		if _, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: id, Source: "shopify", Body: b}, Records: []behavior.Record{r}}); err != nil {
			t.Fatal(err)
		}
		d, err := db.Delivery(ctx, id)
		if err != nil || !bytes.Equal(d.Body, b) || d.ID != id || d.Source != "shopify" || d.ReceivedAt.IsZero() {
			t.Errorf("delivery %s: %+v, %v", id, d, err)
		}
	}
	if n := bodyCount(t, db); n != 3 {
		t.Errorf("%d bodies, want 3", n)
	}
	// A redelivery with the same id stores nothing new.
	if _, err := db.Append(ctx, Ingest{Delivery: &Delivery{ID: "da", Source: "shopify", Body: body}, Records: []behavior.Record{rec("ra", behavior.OrderPlaced, t0, "ann@example.com")}}); err != nil {
		t.Fatal(err)
	}
	if n := bodyCount(t, db); n != 3 {
		t.Errorf("%d bodies after a redelivery, want 3", n)
	}
	p, err := db.ProfileByEmail(ctx, "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Forget(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if n := bodyCount(t, db); n != 1 {
		t.Errorf("%d bodies after forget, want 1", n)
	}
	if _, err := db.Delivery(ctx, "dc"); err != nil {
		t.Errorf("carl's delivery after ann's forget: %v", err)
	}
	if _, err := db.Prune(ctx, t0.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := bodyCount(t, db); n != 0 {
		t.Errorf("%d bodies after prune, want 0", n)
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
}

// Files written before delivery_bodies held "header JSON \n body" under
// the id; those still read, prune and forget.
func TestDeliveryLegacyLayout(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{KeepRaw: true})
	ctx := context.Background()
	r := rec("old-rec", behavior.OrderPlaced, t0, "bob@example.com")
	if _, err := db.Append(ctx, Ingest{Records: []behavior.Record{r}}); err != nil {
		t.Fatal(err)
	}
	want := Delivery{ID: "old", Source: "shopify", Topic: "orders/create", ReceivedAt: t0, Body: []byte("{\"a\":\n1}")}
	err := db.update(ctx, func(tx *bolt.Tx) error {
		h, err := encodeDeliveryHeader(want)
		if err != nil {
			return err
		}
		v := append(append(h, '\n'), want.Body...)
		if err := tx.Bucket(bucketDeliveries).Put([]byte("old"), v); err != nil {
			return err
		}
		// Point the record at it, as the old Append did.
		sr, _, err := getRecordTx(tx, []byte("old-rec"))
		if err != nil {
			return err
		}
		sr.D = "old"
		return putJSON(tx.Bucket(bucketRecords), []byte("old-rec"), sr)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Delivery(ctx, "old")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, %v", got, err)
	}
	p, err := db.ProfileByEmail(ctx, "bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Forget(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Delivery(ctx, "old"); !errors.Is(err, ErrNotFound) {
		t.Errorf("legacy delivery after forget: %v", err)
	}
}

// A panicking batch function fails its own call only; the others commit.
func TestBatchPanicIsolated(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			errs[i] = db.batch(ctx, func(tx *bolt.Tx) error {
				if i == 7 {
					panic("boom")
				}
				return tx.Bucket(bucketMeta).Put([]byte{'k', byte(i)}, []byte{1})
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if (i == 7) != (err != nil) {
			t.Errorf("call %d: %v", i, err)
		}
	}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		for i := range errs {
			if got := tx.Bucket(bucketMeta).Get([]byte{'k', byte(i)}) != nil; got != (i != 7) {
				t.Errorf("key %d stored=%v", i, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
