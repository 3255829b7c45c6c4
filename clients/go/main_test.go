package runcore_test

// Shared test support: every test runs against the real runcore binary
// ($RUNCORE_BIN, default ../../target/debug/runcore; scripts/test.sh builds it).
// TestMain starts one sidecar that most tests share (each test uses its own runs);
// tests that kill, restart or configure a sidecar start their own.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	runcore "github.com/runcore/runcore/clients/go"
	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

// shared is the sidecar most tests log to.
var shared *testSidecar

func sidecarBin() string {
	if bin := os.Getenv(runcore.EnvBin); bin != "" {
		return bin
	}
	abs, err := filepath.Abs(filepath.Join("..", "..", "target", "debug", "runcore"))
	if err != nil {
		return filepath.Join("..", "..", "target", "debug", "runcore")
	}
	return abs
}

func TestMain(m *testing.M) {
	bin := sidecarBin()
	if st, err := os.Stat(bin); err != nil || st.Mode().Perm()&0o111 == 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the Go client tests run against the real sidecar, and there is no runcore binary at %s (%v).\n"+
			"Build it with `cargo build --bin runcore` in the repository root (scripts/test.sh does), or set %s.\n",
			bin, err, runcore.EnvBin)
		os.Exit(1)
	}
	sc, err := launch(bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: starting the shared sidecar:", err)
		os.Exit(1)
	}
	shared = sc
	code := m.Run()
	sc.stop()
	if err := runcore.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "runcore.Close:", err)
	}
	os.Exit(code)
}

// testSidecar is a `runcore serve` on a unix socket in a temp dir.
type testSidecar struct {
	bin     string
	dir     string
	dataDir string
	addr    string
	args    []string
	cmd     *exec.Cmd
	exited  chan struct{}
	conn    *grpc.ClientConn
	client  pb.RunServiceClient
}

// startSidecar starts a private sidecar for one test; extra flags go to serve.
func startSidecar(t testing.TB, extra ...string) *testSidecar {
	t.Helper()
	sc, err := launch(sidecarBin(), extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sc.stop)
	return sc
}

func launch(bin string, extra ...string) (*testSidecar, error) {
	dir, err := os.MkdirTemp("", "rcgo-") // short: unix socket paths are limited
	if err != nil {
		return nil, err
	}
	sc := &testSidecar{bin: bin, dir: dir, dataDir: filepath.Join(dir, "data")}
	sc.args = append([]string{"serve", "--listen", "unix://" + filepath.Join(dir, "s.sock"),
		"--port-file", filepath.Join(dir, "address"), "--data-dir", sc.dataDir}, extra...)
	if err := sc.start(); err != nil {
		return nil, err
	}
	sc.conn, err = grpc.NewClient(sc.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	sc.client = pb.NewRunServiceClient(sc.conn)
	return sc, nil
}

func (sc *testSidecar) start() error {
	_ = os.Remove(filepath.Join(sc.dir, "address"))
	log, err := os.OpenFile(filepath.Join(sc.dir, "sidecar.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(sc.bin, sc.args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	sc.cmd, sc.exited = cmd, exited
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(sc.dir, "address")); err == nil && len(b) > 0 {
			sc.addr = strings.TrimSpace(string(b))
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("runcore %s exited before listening: %s", strings.Join(sc.args, " "), sc.logTail())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("runcore did not write its address in 20 s: %s", sc.logTail())
		}
	}
}

func (sc *testSidecar) logTail() string {
	b, _ := os.ReadFile(filepath.Join(sc.dir, "sidecar.log"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// kill SIGKILLs the sidecar and waits for it to exit.
func (sc *testSidecar) kill(t testing.TB) {
	t.Helper()
	_ = sc.cmd.Process.Kill()
	<-sc.exited
}

func (sc *testSidecar) stop() {
	if sc.cmd != nil {
		select {
		case <-sc.exited:
		default:
			_ = sc.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-sc.exited:
			case <-time.After(20 * time.Second):
				_ = sc.cmd.Process.Kill()
				<-sc.exited
			}
		}
	}
	if sc.conn != nil {
		sc.conn.Close()
	}
	_ = os.RemoveAll(sc.dir)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newRun starts a run on the shared sidecar (or opts.Address) and finishes it at
// the end of the test if the test did not.
func newRun(t testing.TB, opts runcore.Options) *runcore.Run {
	t.Helper()
	if opts.Address == "" {
		opts.Address = shared.addr
	}
	if opts.Project == "" {
		opts.Project = "go-tests"
	}
	run, err := runcore.Init(testCtx(t), opts)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = run.Finish(ctx, 0)
	})
	return run
}

// row is a committed history row as Go values: "_step" and the logged keys.
type row = map[string]any

// history reads a run's committed rows through ScanHistory.
func history(t testing.TB, client pb.RunServiceClient, runID string) []row {
	t.Helper()
	stream, err := client.ScanHistory(testCtx(t), &pb.ScanHistoryRequest{RunId: runID})
	if err != nil {
		t.Fatalf("ScanHistory: %v", err)
	}
	var rows []row
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return rows
		}
		if err != nil {
			t.Fatalf("ScanHistory: %v", err)
		}
		for _, r := range resp.GetRows() {
			m := row{}
			for k, v := range r.GetValues() {
				m[k] = runcore.FromValue(v)
			}
			// Every committed row carries _runtime and _timestamp; tests compare
			// the rest.
			if _, ok := m["_runtime"].(float64); !ok {
				t.Errorf("row at step %d has no _runtime: %v", r.GetStep(), m)
			}
			if ts, ok := m["_timestamp"].(float64); !ok || ts < 1e9 {
				t.Errorf("row at step %d has no _timestamp: %v", r.GetStep(), m)
			}
			delete(m, "_runtime")
			delete(m, "_timestamp")
			m["_step"] = r.GetStep()
			rows = append(rows, m)
		}
	}
}

func getRun(t testing.TB, client pb.RunServiceClient, runID string) *pb.GetRunResponse {
	t.Helper()
	resp, err := client.GetRun(testCtx(t), &pb.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatalf("GetRun(%s): %v", runID, err)
	}
	return resp
}

// eventually polls cond every 10 ms until it holds, failing after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantStatus checks that err is a *runcore.Error for op carrying code and a status
// message equal to msg (or containing it, when msg starts with "~").
func wantStatus(t testing.TB, err error, op string, code codes.Code, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error; want %s %q", op, code, msg)
	}
	var rerr *runcore.Error
	if !errors.As(err, &rerr) {
		t.Fatalf("%s: error %v (%T) is not a *runcore.Error", op, err, err)
	}
	if rerr.Op != op {
		t.Errorf("error op = %q, want %q (%v)", rerr.Op, op, err)
	}
	st, ok := runcore.Status(err)
	if !ok {
		t.Fatalf("%s: runcore.Status(%v) found no status", op, err)
	}
	if st.Code() != code || runcore.Code(err) != code || status.Code(err) != code || rerr.Code() != code {
		t.Errorf("%s: code = %s, want %s (%v)", op, st.Code(), code, err)
	}
	if sub, ok := strings.CutPrefix(msg, "~"); ok {
		if !strings.Contains(st.Message(), sub) {
			t.Errorf("%s: message %q does not contain %q", op, st.Message(), sub)
		}
	} else if st.Message() != msg {
		t.Errorf("%s: message = %q\n                     want %q", op, st.Message(), msg)
	}
}

var suffixes = make(chan int, 1)

func init() { suffixes <- 0 }

// randomSuffix makes ids unique within a test binary run and across runs.
func randomSuffix() string {
	n := <-suffixes
	suffixes <- n + 1
	return fmt.Sprintf("%x%d", time.Now().UnixNano()&0xffffff, n)
}
