package runcore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	runcore "github.com/runcore/runcore/clients/go"
)

// checkEveryRowOnce asserts that the history holds rows 0..n-1 once each, in order,
// with "i" equal to the step.
func checkEveryRowOnce(t *testing.T, rows []row, n int) {
	t.Helper()
	if len(rows) != n {
		t.Fatalf("%d history rows, want %d", len(rows), n)
	}
	for i, r := range rows {
		if r["_step"] != int64(i) || r["i"] != float64(i) {
			t.Fatalf("row %d = %v", i, r)
		}
	}
}

// The sidecar is SIGKILLed in the middle of a stream and started again: the client
// reconnects, finds its run recovered, resends what had no ack, and every row
// lands exactly once.
func TestReconnectAfterSidecarKillResendsExactlyOnce(t *testing.T) {
	t.Parallel()
	sc := startSidecar(t)
	run := newRun(t, runcore.Options{Address: sc.addr, BatchRows: 64, BatchInterval: time.Millisecond})
	const n = 6000
	for i := range n / 3 {
		if err := run.Log(map[string]any{"i": float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Kill it while batches are in flight, restart it on the same socket and data
	// dir, and keep logging through the outage.
	sc.kill(t)
	restarted := make(chan error, 1)
	go func() { restarted <- sc.start() }()
	for i := n / 3; i < n; i++ {
		if err := run.Log(map[string]any{"i": float64(i)}); err != nil {
			t.Fatalf("Log %d: %v", i, err)
		}
	}
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	res, err := run.Finish(testCtx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.State != runcore.StateFinished || res.Run.HistoryRows != n {
		t.Errorf("finish = %+v", res.Run)
	}
	checkEveryRowOnce(t, history(t, sc.client, run.ID()), n)
}

// A sidecar this process spawned dies: the client starts it again (same socket,
// same data dir) and goes on, every row once. Runs of one process share the spawned
// sidecar; Close stops it and removes its private dir.
func TestSpawnedSidecarRestartAndClose(t *testing.T) {
	t.Setenv(runcore.EnvAddress, "") // spawn even if the environment names a sidecar
	ctx := testCtx(t)
	dataDir := t.TempDir()
	opts := runcore.Options{Binary: sidecarBin(), DataDir: dataDir, Project: "spawned"}
	run, err := runcore.Init(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := runcore.SpawnDir(run)
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("spawn dir %s: %v %v", dir, st.Mode(), err)
	}
	other, err := runcore.Init(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if other.Address() != run.Address() || len(run.Address()) < 8 || run.Address()[:7] != "unix://" {
		t.Errorf("addresses %q and %q: want one shared unix socket", run.Address(), other.Address())
	}
	if _, err := other.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}

	const n = 1000
	for i := range n / 2 {
		if err := run.Log(map[string]any{"i": float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := run.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	pid := runcore.SidecarPID(run)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := n / 2; i < n; i++ {
		if err := run.Log(map[string]any{"i": float64(i)}); err != nil {
			t.Fatalf("Log %d: %v", i, err)
		}
	}
	res, err := run.Finish(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.HistoryRows != n {
		t.Errorf("history rows %d, want %d", res.Run.HistoryRows, n)
	}
	newPID := runcore.SidecarPID(run)
	if newPID == pid || newPID == 0 {
		t.Errorf("sidecar pid %d after the kill of %d: not restarted", newPID, pid)
	}
	if _, err := os.Stat(dataDir + "/spawned/" + run.ID() + "/run.json"); err != nil {
		t.Errorf("the spawned sidecar did not use DataDir: %v", err)
	}

	if err := runcore.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("spawn dir %s still there after Close: %v", dir, err)
	}
	if err := syscall.Kill(newPID, 0); err == nil {
		t.Errorf("spawned sidecar %d still running after Close", newPID)
	}
}

// A sidecar that does not come back: after ReconnectTimeout the rows held are
// reported lost, and Log, Flush and Finish fail with UNAVAILABLE instead of hanging.
func TestSidecarGoneForGood(t *testing.T) {
	t.Parallel()
	sc := startSidecar(t)
	run, err := runcore.Init(testCtx(t), runcore.Options{Address: sc.addr, ReconnectTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Log(map[string]any{"i": 0.0}); err != nil {
		t.Fatal(err)
	}
	if err := run.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	sc.kill(t)
	for i := 1; i <= 10; i++ {
		if err := run.Log(map[string]any{"i": float64(i)}); err != nil {
			break // the sender may already have given up
		}
	}
	err = run.Flush(testCtx(t))
	wantStatus(t, err, "Log", codes.Unavailable, "~did not come back within 300ms")
	var rerr *runcore.Error
	if errors.As(err, &rerr); rerr == nil || rerr.Lost < 1 {
		t.Errorf("error %#v: want the lost rows counted", rerr)
	}
	wantStatus(t, run.Log(map[string]any{"i": 11.0}), "Log", codes.Unavailable, "~did not come back within 300ms")
	_, err = run.Finish(testCtx(t), 0)
	if runcore.Code(err) != codes.Unavailable {
		t.Errorf("Finish: %v", err)
	}
}

// A row still being packed into a batch when the sender gives up is lost with the
// rest, and Flush and Finish return at once. (They used to wait for an ack that
// could not come: the row was sealed into a batch after the sender had died, and
// nothing retired it, so Flush waited for its ctx, not ReconnectTimeout.)
func TestGivingUpWithARowBeingPacked(t *testing.T) {
	t.Parallel()
	sc := startSidecar(t)
	ctx := testCtx(t)
	run, err := runcore.Init(ctx, runcore.Options{Address: sc.addr, ReconnectTimeout: 300 * time.Millisecond,
		BatchInterval: time.Hour, BatchRows: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Log(map[string]any{"i": 0.0}); err != nil {
		t.Fatal(err)
	}
	if err := run.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := run.Log(map[string]any{"i": 1.0}); err != nil { // packed, not sent: the batch interval is an hour
		t.Fatal(err)
	}
	sc.kill(t)
	eventually(t, 10*time.Second, "the sender gives up", func() bool { return run.Log(map[string]any{"i": 2.0}) != nil })
	flushCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	err = run.Flush(flushCtx)
	wantStatus(t, err, "Log", codes.Unavailable, "~did not come back within 300ms")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Flush took %s after the sender had given up", d)
	}
	var rerr *runcore.Error
	if errors.As(err, &rerr); rerr == nil || rerr.Lost < 1 {
		t.Errorf("error %#v: want the packed row counted lost", rerr)
	}
	if _, err := run.Finish(flushCtx, 0); runcore.Code(err) != codes.Unavailable {
		t.Errorf("Finish: %v", err)
	}
}

// TestSidecarGoneForGood under load, several times at once: rows logged across the
// kill, batches sealed every millisecond, the CPUs busy. Flush gives up within
// about ReconnectTimeout every time (run it with -race: scripts/test.sh does).
func TestSidecarGoneForGoodUnderLoad(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	for range runtime.GOMAXPROCS(0) {
		go func() {
			x := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := range 100000 {
					x += i
				}
			}
		}()
	}
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			sc := startSidecar(t)
			ctx := testCtx(t)
			run, err := runcore.Init(ctx, runcore.Options{Address: sc.addr, ReconnectTimeout: 300 * time.Millisecond,
				BatchInterval: time.Millisecond, BatchRows: 8})
			if err != nil {
				t.Fatal(err)
			}
			logged := make(chan struct{})
			go func() {
				defer close(logged)
				for j := 0; j < 5000; j++ {
					if run.Log(map[string]any{"i": float64(j)}) != nil {
						return // the sender gave up
					}
				}
			}()
			time.Sleep(20 * time.Millisecond)
			sc.kill(t)
			<-logged
			flushCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			start := time.Now()
			err = run.Flush(flushCtx)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Flush took %s (ReconnectTimeout is 300ms): %v", d, err)
			}
			// All rows may have been acknowledged before the kill; if not, the
			// rest are reported lost with UNAVAILABLE.
			if err != nil && runcore.Code(err) != codes.Unavailable {
				t.Errorf("Flush: %v", err)
			}
			if _, err := run.Finish(flushCtx, 0); err == nil || runcore.Code(err) != codes.Unavailable {
				t.Errorf("Finish after the sidecar is gone: %v", err)
			}
		})
	}
}
