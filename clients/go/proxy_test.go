package runcore_test

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	runcore "github.com/runcore/runcore/clients/go"
)

// lossyProxy forwards unix socket connections to a sidecar; while holding, it
// swallows everything the sidecar sends back (acks included), and cut closes every
// connection, as a network that drops the replies and then the connection would.
type lossyProxy struct {
	addr     string
	target   string
	ln       net.Listener
	mu       sync.Mutex
	holding  bool
	conns    []net.Conn
	closedCh chan struct{}
}

func startProxy(t *testing.T, targetAddr string) *lossyProxy {
	t.Helper()
	dir, err := os.MkdirTemp("", "rcpx-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "p.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{addr: "unix://" + sock, target: strings.TrimPrefix(targetAddr, "unix://"), ln: ln, closedCh: make(chan struct{})}
	t.Cleanup(func() {
		close(p.closedCh)
		ln.Close()
		p.cut()
		os.RemoveAll(dir)
	})
	go p.accept()
	return p
}

func (p *lossyProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("unix", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(server, client); server.Close() }()
		go p.replies(server, client)
	}
}

func (p *lossyProxy) replies(server, client net.Conn) {
	defer client.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			p.mu.Lock()
			hold := p.holding
			p.mu.Unlock()
			if !hold {
				if _, werr := client.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *lossyProxy) hold() {
	p.mu.Lock()
	p.holding = true
	p.mu.Unlock()
}

// cut closes every connection and forwards normally again.
func (p *lossyProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.holding = false
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// The sidecar applies batches whose acks never reach the client, then the
// connection breaks: the client resends them, the sidecar acknowledges them as
// duplicates without applying them again, and each row lands exactly once.
func TestResendAfterLostAcksIsDeduplicated(t *testing.T) {
	t.Parallel()
	proxy := startProxy(t, shared.addr)
	run := newRun(t, runcore.Options{Address: proxy.addr, BatchRows: 20, BatchInterval: time.Millisecond})
	ctx := testCtx(t)
	logRange := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := run.Log(map[string]any{"i": float64(i)}); err != nil {
				t.Fatalf("Log %d: %v", i, err)
			}
		}
	}
	logRange(0, 100)
	if err := run.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	proxy.hold()
	logRange(100, 300)
	eventually(t, 10*time.Second, "the sidecar applies the rows whose acks are lost", func() bool {
		return getRun(t, shared.client, run.ID()).GetRun().GetHistoryRows() == 300
	})
	proxy.cut()
	// Flush returns only once every batch is acknowledged: the resent ones were.
	if err := run.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	logRange(300, 400)
	res, err := run.Finish(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.HistoryRows != 400 {
		t.Errorf("history rows %d, want 400", res.Run.HistoryRows)
	}
	checkEveryRowOnce(t, history(t, shared.client, run.ID()), 400)
}
