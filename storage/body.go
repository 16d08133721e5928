package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/s2"
)

// Raw delivery bodies are stored framed: one format byte, then
//
//	bodyFrameRaw: the body as received;
//	bodyFrameS2:  CRC-32C (Castagnoli, 4 bytes little endian) of the
//	              block that follows: the body as one S2 block
//	              (github.com/klauspost/compress/s2).
//
// Webhook bodies are JSON and shrink 4–5× (the 27 KB Shopify sample
// order to ~5.8 KB), so a stored order writes and fsyncs ~2 pages for its
// body instead of ~9 (with the neighbours its leaf rewrites), and the file
// grows ~12 KB per order instead of ~34 KB. S2 is the fastest compressor
// at hand (~1.2 GB/s on this JSON, decoding at several; zstd's fastest
// level takes 5× the CPU, stdlib flate more): ~20 µs per order, about the
// CPU the page writes and fsync work it saves would cost (bench/README.md
// "Ingest"). The checksum makes corruption of the compressed bytes a clear
// error on read instead of a wrong body (S2 blocks carry none), and is
// checked before the block's own length header is trusted to size the
// output, so damaged bytes cannot make a read allocate a huge buffer.
//
// Only the delivery's header knows whether its body is framed (its
// "body_fmt"; see putDeliveryTx): a body stored before framing existed is
// arbitrary bytes, whose first byte says nothing.
const (
	bodyFrameRaw byte = 0
	bodyFrameS2  byte = 1

	// bodyFmtFramed is the header's "body_fmt" for framed bodies.
	bodyFmtFramed = 1

	// bodyMinCompress: smaller bodies are stored raw; S2 gains nothing
	// worth a decode on read below a few hundred bytes.
	bodyMinCompress = 256
	// maxBodyLen: larger bodies are stored raw (framed); webhook bodies
	// are limited to 1 MiB by default. A decoded length above it is
	// refused as corrupt.
	maxBodyLen = 64 << 20
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// errBodyCorrupt is wrapped by every decoding error of a stored body.
var errBodyCorrupt = errors.New("stored body corrupt")

// maxPooledBodyBuf: larger buffers are left to the garbage collector
// rather than kept for the rare huge body.
const maxPooledBodyBuf = 1 << 20

// encodeBody frames body for delivery_bodies, compressing it when that
// makes it smaller. It runs outside the group commit. The frame lives in a
// buffer from pool (DB.bodyBufs): a frame must stay valid until the
// transaction that stores it has committed, so the caller calls release
// once no transaction can refer to it any more, and not before; a stored
// body then costs no allocation.
func encodeBody(pool *sync.Pool, body []byte) (frame []byte, release func()) {
	need := 1 + len(body)
	compress := len(body) >= bodyMinCompress && len(body) <= maxBodyLen
	if compress {
		need = 5 + s2.MaxEncodedLen(len(body))
	}
	var bp *[]byte
	if p, ok := pool.Get().(*[]byte); ok && cap(*p) >= need {
		bp = p
	} else {
		b := make([]byte, need)
		bp = &b
	}
	buf := (*bp)[:cap(*bp)]
	release = func() {
		if cap(*bp) <= maxPooledBodyBuf {
			pool.Put(bp)
		}
	}
	if compress {
		enc := s2.Encode(buf[5:], body)
		if len(enc)+5 < len(body)+1 {
			buf[0] = bodyFrameS2
			binary.LittleEndian.PutUint32(buf[1:5], crc32.Checksum(enc, crc32c))
			return buf[:5+len(enc)], release
		}
	}
	buf[0] = bodyFrameRaw
	copy(buf[1:], body)
	return buf[:1+len(body)], release
}

// decodeBody returns the body in a frame from delivery_bodies. A raw
// frame's body is a view into v; a compressed one is decoded into a new
// slice. Any malformed frame is an error wrapping errBodyCorrupt, never a
// panic: v may be damaged bytes from disk.
func decodeBody(v []byte) ([]byte, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: empty frame", errBodyCorrupt)
	}
	switch v[0] {
	case bodyFrameRaw:
		return v[1:], nil
	case bodyFrameS2:
		if len(v) < 5 {
			return nil, fmt.Errorf("%w: short S2 frame (%d bytes)", errBodyCorrupt, len(v))
		}
		sum, block := binary.LittleEndian.Uint32(v[1:5]), v[5:]
		if got := crc32.Checksum(block, crc32c); got != sum {
			return nil, fmt.Errorf("%w: checksum %08x, want %08x", errBodyCorrupt, got, sum)
		}
		return decodeS2Block(block)
	default:
		return nil, fmt.Errorf("%w: unknown format %#x", errBodyCorrupt, v[0])
	}
}

// decodeS2Block decodes one S2 block of at most maxBodyLen bytes.
func decodeS2Block(block []byte) ([]byte, error) {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBodyCorrupt, err)
	}
	if n > maxBodyLen {
		return nil, fmt.Errorf("%w: decoded length %d over %d", errBodyCorrupt, n, maxBodyLen)
	}
	out, err := s2.Decode(make([]byte, n), block)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBodyCorrupt, err)
	}
	return out, nil
}
