package api

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"cdp/config"
)

// failsafe is how long a test client waits for the server to cut it off
// before the test fails; it is never waited for when the server works.
const failsafe = 10 * time.Second

// countingListener counts the connections it has open (accepted, not yet
// closed) and the most it ever had, below the connection bound.
type countingListener struct {
	net.Listener
	mu             sync.Mutex
	open, peak, in int
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.open++
	l.in++
	l.peak = max(l.peak, l.open)
	l.mu.Unlock()
	return &countedConn{Conn: c, l: l}, nil
}

func (l *countingListener) stats() (peak, accepted int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peak, l.in
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return err
}

// serve starts NewHTTPServer(h, l) on a loopback port behind the limits'
// connection bound and returns its address and the count of connections.
func serve(t *testing.T, h http.Handler, l HTTPLimits) (string, *countingListener) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: inner}
	srv := NewHTTPServer(h, l)
	go func() { _ = srv.Serve(LimitListener(cl, l)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return inner.Addr().String(), cl
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }

// dial opens a raw connection that gives up after failsafe.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(failsafe))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// cutOff reads c until the server closes it; it fails the test if the
// failsafe ran out first. It returns what the server wrote.
func cutOff(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v (read %q)", failsafe, b)
	}
	return string(b)
}

// Clients that start their headers and never finish them are each cut
// off after ReadHeaderTimeout, and never more of them are open than
// MaxConns: the ones beyond wait to be accepted, and are cut off in turn.
func TestSlowHeadersAreCutOffAndConnectionsBounded(t *testing.T) {
	l := HTTPLimits{ReadHeaderTimeout: 50 * time.Millisecond, ReadTimeout: time.Minute, MaxConns: 2}
	addr, cl := serve(t, http.HandlerFunc(ok), l)
	const clients = 5
	var wg sync.WaitGroup
	for range clients {
		c := dial(t, addr)
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if got := cutOff(t, c); got != "" {
				t.Errorf("a client that never finished its headers got %q", got)
			}
		})
	}
	wg.Wait()
	peak, accepted := cl.stats()
	if accepted != clients || peak > l.MaxConns {
		t.Fatalf("%d connections accepted, at most %d open at once; want %d accepted, at most %d open", accepted, peak, clients, l.MaxConns)
	}
	// The slots are free again: a whole request is answered.
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d after the slow clients", resp.StatusCode)
	}
}

// A body that stops arriving fails the handler's read at ReadTimeout,
// and the connection is closed.
func TestASlowBodyIsCutOffAtReadTimeout(t *testing.T) {
	readErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		if err != nil {
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusRequestTimeout)
		}
	})
	addr, _ := serve(t, h, HTTPLimits{ReadHeaderTimeout: time.Minute, ReadTimeout: 100 * time.Millisecond})
	c := dial(t, addr)
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	got := cutOff(t, c)
	var ne net.Error
	if err := <-readErr; !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("the handler's read of a stalled body ended with %v, want a timeout", err)
	}
	if !strings.HasPrefix(got, "HTTP/1.1 408") {
		t.Fatalf("answer %q, want a 408", got)
	}
}

// A client that sends its request and never reads the answer holds the
// handler's writes only until WriteTimeout.
func TestAClientThatNeverReadsIsCutOffAtWriteTimeout(t *testing.T) {
	writeErr := make(chan error, 1)
	chunk := make([]byte, 1<<20)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for range 1 << 10 { // 1 GiB: far more than any socket buffer
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	})
	addr, _ := serve(t, h, HTTPLimits{ReadHeaderTimeout: time.Minute, WriteTimeout: 100 * time.Millisecond})
	c := dial(t, addr)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("1 GiB was written to a client that reads nothing")
		}
	case <-time.After(failsafe):
		t.Fatalf("the handler still writes after %v", failsafe)
	}
}

// A keep-alive connection is closed after IdleTimeout without a request.
func TestAnIdleConnectionIsClosedAtIdleTimeout(t *testing.T) {
	addr, _ := serve(t, http.HandlerFunc(ok), HTTPLimits{ReadHeaderTimeout: time.Minute, IdleTimeout: 50 * time.Millisecond})
	c := dial(t, addr)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("first answer %d (close %v), want 200 keep-alive", resp.StatusCode, resp.Close)
	}
	if rest, err := io.ReadAll(br); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the idle connection was kept for %v", failsafe)
		}
	} else if len(rest) > 0 {
		t.Fatalf("the idle connection got %q", rest)
	}
}

// Headers beyond MaxHeaderBytes are refused with 431.
func TestHeadersBeyondTheBoundAreRefused(t *testing.T) {
	addr, _ := serve(t, http.HandlerFunc(ok), HTTPLimits{ReadHeaderTimeout: time.Minute, MaxHeaderBytes: 1 << 10})
	c := dial(t, addr)
	// net/http allows 4 KiB of slack above MaxHeaderBytes.
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 16<<10)); err != nil {
		t.Fatal(err)
	}
	if got := cutOff(t, c); !strings.HasPrefix(got, "HTTP/1.1 431") {
		t.Fatalf("answer %.80q, want a 431", got)
	}
}

func TestDefaultHTTPLimitsFitAdmission(t *testing.T) {
	d := DefaultHTTPLimits
	var cfg config.Config
	cfg.Register(pflag.NewFlagSet("defaults", pflag.ContinueOnError), func(string) string { return "" })
	if d.ReadHeaderTimeout <= 0 || d.ReadTimeout < d.ReadHeaderTimeout+DefaultAdmission.BodyTimeout ||
		d.WriteTimeout <= DefaultAdmission.BodyTimeout+cfg.HTTPQueueWait || d.IdleTimeout <= 0 || d.MaxHeaderBytes <= 0 || d.MaxConns <= 0 {
		t.Fatalf("DefaultHTTPLimits %+v do not leave a whole body and a queue wait within the deadlines, or leave a bound unset", d)
	}
}
