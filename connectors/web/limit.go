package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters hands out one token bucket per key (a hashed IP, a write key)
// and forgets buckets idle for long enough to be full again, so memory
// stays bounded by the number of recently active clients.
type limiters struct {
	mu      sync.Mutex
	every   rate.Limit
	burst   int
	idle    time.Duration
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// newLimiters returns nil (no limit) unless perSecond is positive.
func newLimiters(perSecond float64) *limiters {
	if perSecond <= 0 {
		return nil
	}
	burst := int(perSecond * 4)
	if burst < 1 {
		burst = 1
	}
	idle := time.Duration(float64(burst)/perSecond*float64(time.Second)) + time.Minute
	return &limiters{every: rate.Limit(perSecond), burst: burst, idle: idle, buckets: map[string]*bucket{}}
}

// allow takes n events from key's bucket at now. A batch larger than the
// burst is charged the whole burst, so it passes on a full bucket rather
// than never.
func (l *limiters) allow(key string, n int, now time.Time) bool {
	if l == nil {
		return true
	}
	if n > l.burst {
		n = l.burst
	}
	if n < 1 {
		n = 1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > l.idle {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > l.idle {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.every, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	return b.lim.AllowN(now, n)
}

// retryAfter is how long a client should wait before the next event fits.
func (l *limiters) retryAfter() time.Duration {
	if l == nil || l.every <= 0 {
		return time.Second
	}
	d := time.Duration(float64(time.Second) / float64(l.every))
	if d < time.Second {
		d = time.Second
	}
	return d
}

// ipHasher keys per-IP limits by an HMAC of the address under a random
// key that lives only in this process: the limiter never holds a raw IP,
// and the hashes are worthless after a restart.
type ipHasher struct{ key []byte }

func newIPHasher() ipHasher {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic("web: crypto/rand failed: " + err.Error())
	}
	return ipHasher{key: k}
}

func (h ipHasher) hash(ip string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(ip))
	return string(m.Sum(nil)[:16])
}
