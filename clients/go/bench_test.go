package runcore_test

import (
	"syscall"
	"testing"
	"time"

	runcore "github.com/runcore/runcore/clients/go"
)

// BenchmarkLog measures Log throughput over LogStream: b.N rows of ten float
// metrics, all acknowledged by the sidecar (the time includes the final Flush).
// Run it with: go test -run '^$' -bench . -benchtime 200000x
func BenchmarkLog(b *testing.B) {
	benchLog(b, func(i int, row map[string]any) {
		row["loss"] = float64(i)
	}, map[string]any{
		"loss": 0.0, "acc": 0.5, "lr": 1e-3, "grad_norm": 1.5, "tokens_per_s": 1e5,
		"val/loss": 0.7, "val/acc": 0.4, "mem/gb": 12.5, "gpu/util": 0.9, "epoch_frac": 0.01,
	})
}

// BenchmarkLogMixed logs rows that also carry an int, a string and a nested map,
// which travel as Values instead of the packed scalar fields.
func BenchmarkLogMixed(b *testing.B) {
	benchLog(b, func(i int, row map[string]any) {
		row["loss"] = float64(i)
		row["batch"] = i
	}, map[string]any{
		"loss": 0.0, "acc": 0.5, "lr": 1e-3, "batch": 0, "phase": "train",
		"layers": map[string]any{"l0": 0.1, "l1": 0.2},
	})
}

// benchLog reports rows/s, and the CPU time this process (the client) spent per row,
// which tells the client's cost apart from the sidecar's.
func benchLog(b *testing.B, update func(int, map[string]any), row map[string]any) {
	run := newRun(b, runcore.Options{})
	ctx := testCtx(b)
	b.ReportAllocs()
	before := cpuTime(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		update(i, row)
		if err := run.Log(row); err != nil {
			b.Fatal(err)
		}
	}
	if err := run.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64((cpuTime(b)-before).Nanoseconds())/float64(b.N), "client-cpu-ns/row")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
