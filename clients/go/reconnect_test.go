package runcore_test

import (
	"errors"
	"os"
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
