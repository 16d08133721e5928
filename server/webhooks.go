package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/storage"
)

// Webhook outcomes, used as the metrics label.
const (
	outcomeStored    = "stored"
	outcomeDuplicate = "duplicate"
	outcomeIgnored   = "ignored"
	outcomePing      = "ping"
	outcomeSignature = "bad_signature"
	outcomeStale     = "stale"
	outcomeMalformed = "malformed"
	outcomeTooLarge  = "too_large"
	outcomeError     = "error"
	outcomeUnknown   = "unknown_route"
)

// ReadBody reads at most limit bytes; a larger body is an
// *http.MaxBytesError.
func ReadBody(c *gin.Context, limit int64) ([]byte, error) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	n := c.Request.ContentLength
	if n <= 0 || n > limit {
		return io.ReadAll(c.Request.Body)
	}
	// The declared length sizes the buffer once (io.ReadAll would grow it
	// from 512 bytes, copying a 27 KB order about seven times); one spare
	// byte lets the read that sees EOF happen without growing it. A body
	// longer than declared still reads whole, up to the limit.
	buf := make([]byte, 0, n+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		m, err := c.Request.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// webhook verifies, normalizes and stores one delivery, answering 200 only
// after the records are committed (CONTRACT §3).
func (s *Server) webhook(c *gin.Context) {
	start := time.Now()
	source, store := c.Param("source"), c.Param("store")
	key := source
	if store != "" {
		key += "/" + store
	}
	w, ok := s.hooks[key]
	if !ok {
		s.metrics.webhook("unknown", outcomeUnknown, start) // never a user-chosen label
		switch {
		case !s.knownSource(source):
			jsonError(c, http.StatusNotFound, "no webhook receiver for "+source+" (is it configured?)")
		case store != "":
			jsonError(c, http.StatusNotFound, "unknown store "+store+" for "+source)
		default:
			jsonError(c, http.StatusNotFound, "no webhook receiver for "+source+" (is it configured?)")
		}
		return
	}
	body, err := ReadBody(c, s.opts.MaxBodyBytes)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.metrics.webhook(source, outcomeTooLarge, start)
			jsonError(c, http.StatusRequestEntityTooLarge, "body over the limit")
			return
		}
		s.metrics.webhook(source, outcomeMalformed, start)
		jsonError(c, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	h := c.Request.Header
	if p, ok := w.Receiver.(connectors.Pinger); ok && p.IsPing(h, body) {
		s.metrics.webhook(source, outcomePing, start)
		c.JSON(http.StatusOK, gin.H{"status": "ping"})
		return
	}
	now := s.opts.Clock.Now()
	if err := w.Receiver.Verify(h, body, now); err != nil {
		switch {
		case errors.Is(err, connectors.ErrStale):
			s.metrics.webhook(source, outcomeStale, start)
			jsonError(c, http.StatusBadRequest, err.Error())
		case errors.Is(err, connectors.ErrMalformed):
			s.metrics.webhook(source, outcomeMalformed, start)
			jsonError(c, http.StatusBadRequest, err.Error())
		default:
			s.metrics.webhook(source, outcomeSignature, start)
			jsonError(c, http.StatusUnauthorized, "signature verification failed")
		}
		return
	}
	recs, err := w.Receiver.Normalize(h, body)
	ignored := errors.Is(err, connectors.ErrIgnored)
	if err != nil && !ignored {
		s.metrics.webhook(source, outcomeMalformed, start)
		jsonError(c, http.StatusBadRequest, err.Error())
		return
	}
	topic := ""
	if t, ok := w.Receiver.(connectors.Topicer); ok {
		topic = t.Topic(h)
	}
	for i := range recs {
		recs[i].ReceivedAt = now
	}
	// An ignored topic is still persisted (raw, when the store keeps raw
	// deliveries) before the 200: a later nudge version may use it, and
	// "200 means stored" holds for every acknowledged delivery.
	id := deliveryID(key, body)
	if len(recs) > 0 {
		id = storage.TimeOrderedDeliveryID(now, id)
	}
	in := storage.Ingest{
		Delivery: &storage.Delivery{
			ID:     id,
			Source: source, Store: store, Topic: topic, ReceivedAt: now, Body: body,
		},
		Records: recs,
	}
	res, err := s.opts.Store.Append(c.Request.Context(), in)
	if err != nil {
		if errors.Is(err, storage.ErrInvalid) {
			s.metrics.webhook(source, outcomeMalformed, start)
			jsonError(c, http.StatusBadRequest, err.Error())
			return
		}
		s.metrics.webhook(source, outcomeError, start)
		s.opts.Logger.Error("webhook store failed", "source", source, "topic", topic, "error", err)
		// 500 makes the provider retry, which is what we want.
		jsonError(c, http.StatusInternalServerError, "could not store the delivery")
		return
	}
	if ignored {
		s.metrics.webhook(source, outcomeIgnored, start)
		c.JSON(http.StatusOK, gin.H{"status": "ignored"})
		return
	}
	outcome := outcomeStored
	if len(res.New) == 0 {
		outcome = outcomeDuplicate
	}
	s.metrics.webhook(source, outcome, start)
	s.metrics.records.Add(float64(len(res.New)))
	if s.opts.OnIngest != nil && len(res.New) > 0 {
		s.opts.OnIngest(res)
	}
	c.JSON(http.StatusOK, gin.H{"status": outcome, "records": len(res.New), "duplicates": res.Duplicates})
}

// deliveryID is behavior.DeriveID("delivery", key, string(body)) without
// copying the body into a string: the same bytes are hashed, so ids match
// those of deliveries stored before.
func deliveryID(key string, body []byte) string {
	h := sha256.New()
	h.Write([]byte("delivery\x00"))
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(body)
	h.Write([]byte{0})
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// knownSource reports whether any receiver serves source, so an unknown
// source and an unknown store of a known one get different answers.
func (s *Server) knownSource(source string) bool {
	for key := range s.hooks {
		if src, _, _ := strings.Cut(key, "/"); src == source {
			return true
		}
	}
	return false
}
