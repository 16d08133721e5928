package connectortest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// ConnectionsPerBurst measures a Sender's connection reuse: it serves h
// and makes two bursts of n calls, each call held until all n of its
// burst have arrived (as a batch of due steps calls a provider), and
// returns how many connections each burst opened. connect builds the
// call from the server's URL; call i must reach the server once.
func ConnectionsPerBurst(t *testing.T, n int, h http.Handler, connect func(url string) func(i int) error) (first, second int64) {
	t.Helper()
	var opened atomic.Int64
	var arrived sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		arrived.Wait() // every call of the burst is open at once
		h.ServeHTTP(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	call := connect(srv.URL)
	burst := func() int64 {
		before := opened.Load()
		arrived.Add(n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := call(i); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		return opened.Load() - before
	}
	first = burst()
	second = burst()
	t.Logf("connections opened: first burst %d, second %d", first, second)
	return first, second
}
