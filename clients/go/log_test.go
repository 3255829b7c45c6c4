package runcore_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	runcore "github.com/runcore/runcore/clients/go"
)

// The W&B step/commit table, checked against the committed history and Step().
func TestLogStepAndCommit(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var dropped []runcore.DroppedRow
	run := newRun(t, runcore.Options{OnDropped: func(d runcore.DroppedRow) {
		mu.Lock()
		dropped = append(dropped, d)
		mu.Unlock()
	}})
	steps := []struct {
		data map[string]any
		opts []runcore.LogOption
		step int64 // Step() after the call
	}{
		{map[string]any{"a": 1.0}, nil, 1},                                            // commits at 0
		{map[string]any{"a": 2.0}, []runcore.LogOption{runcore.WithCommit(false)}, 1}, // pending at 1
		{map[string]any{"b": 3.0}, nil, 2},                                            // commits {a:2, b:3} at 1
		{map[string]any{"c": 1.0}, []runcore.LogOption{runcore.WithStep(5)}, 5},       // jumps to 5, pending
		{map[string]any{"d": 2.0}, []runcore.LogOption{runcore.WithStep(5)}, 5},       // same step merges
		{map[string]any{"e": 1.0}, []runcore.LogOption{runcore.WithStep(7)}, 7},       // commits 5, jumps to 7
		{map[string]any{"f": 1.0}, []runcore.LogOption{runcore.WithStep(7), runcore.WithCommit(true)}, 8},
		{map[string]any{"g": 1.0}, []runcore.LogOption{runcore.WithStep(3)}, 8}, // smaller: dropped, reported
		{map[string]any{}, nil, 8},                                              // empty: commits nothing
		{map[string]any{"h": 1.0}, []runcore.LogOption{runcore.WithCommit(false)}, 8},
		{map[string]any{}, nil, 9}, // commits the pending {h} at 8
	}
	for i, s := range steps {
		if err := run.Log(s.data, s.opts...); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got := run.Step(); got != s.step {
			t.Errorf("after call %d Step() = %d, want %d", i, got, s.step)
		}
	}
	if err := run.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	want := []row{
		{"_step": int64(0), "a": 1.0},
		{"_step": int64(1), "a": 2.0, "b": 3.0},
		{"_step": int64(5), "c": 1.0, "d": 2.0},
		{"_step": int64(7), "e": 1.0, "f": 1.0},
		{"_step": int64(8), "h": 1.0},
	}
	got := history(t, shared.client, run.ID())
	if !reflect.DeepEqual(got, want) {
		t.Errorf("history:\n got %v\nwant %v", got, want)
	}
	if info := getRun(t, shared.client, run.ID()).GetRun(); info.GetStep() != run.Step() {
		t.Errorf("sidecar step %d, client Step() %d", info.GetStep(), run.Step())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dropped) != 1 || dropped[0].Step != 3 || dropped[0].CurrentStep != 8 ||
		dropped[0].Reason != "step 3 is smaller than the run's current step 8; W&B drops such rows, log with a step >= 8 or without one" {
		t.Errorf("dropped = %+v", dropped)
	}
	if run.DroppedRows() != 1 {
		t.Errorf("DroppedRows() = %d", run.DroppedRows())
	}
}

type celsius float64

func TestLogValueKinds(t *testing.T) {
	t.Parallel()
	img := filepath.Join(t.TempDir(), "sample.png")
	if err := os.WriteFile(img, []byte("\x89PNG not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	seven := 7
	run := newRun(t, runcore.Options{})
	data := map[string]any{
		"f64": 0.5, "f32": float32(0.25), "int": 3, "i64": int64(-4), "u8": uint8(200),
		"bool": true, "str": "hello", "nil": nil, "named": celsius(21.5), "ptr": &seven,
		"nan": math.NaN(), "inf": math.Inf(1), "ninf": math.Inf(-1),
		"nested":  map[string]any{"a/b": map[string]any{"c.d": 1.5}, "list": []any{1, "x", false}},
		"floats":  []float64{1, 2},
		"strs":    []string{"a"},
		"ints":    map[string]int{"x": 1},
		"hist":    runcore.Histogram{Values: []float64{1, 2, 2, 3}, NumBins: 2},
		"binned":  &runcore.Histogram{Bins: []float64{0, 1, 2}, Counts: []int64{5, 6}},
		"picture": runcore.Image(img, "a sample"),
	}
	if err := run.Log(data); err != nil {
		t.Fatal(err)
	}
	if err := run.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	rows := history(t, shared.client, run.ID())
	if len(rows) != 1 {
		t.Fatalf("history = %v", rows)
	}
	got := rows[0]
	for k, want := range map[string]any{
		"f64": 0.5, "f32": 0.25, "int": int64(3), "i64": int64(-4), "u8": int64(200), "bool": true, "str": "hello",
		"nil": nil, "named": 21.5, "ptr": int64(7), "inf": math.Inf(1), "ninf": math.Inf(-1),
		"nested": map[string]any{"a/b": map[string]any{"c.d": 1.5}, "list": []any{int64(1), "x", false}},
		"floats": []any{1.0, 2.0},
		"strs":   []any{"a"},
		"ints":   map[string]any{"x": int64(1)},
		"hist":   runcore.Histogram{Bins: []float64{1, 2, 3}, Counts: []int64{1, 3}},
		"binned": runcore.Histogram{Bins: []float64{0, 1, 2}, Counts: []int64{5, 6}},
	} {
		if !reflect.DeepEqual(got[k], want) {
			t.Errorf("%s = %#v, want %#v", k, got[k], want)
		}
	}
	if f, ok := got["nan"].(float64); !ok || !math.IsNaN(f) {
		t.Errorf("nan = %#v", got["nan"])
	}
	media, ok := got["picture"].(runcore.Media)
	if !ok || media.Kind != runcore.MediaImage || media.Caption != "a sample" {
		t.Fatalf("picture = %#v", got["picture"])
	}
	// The sidecar copied the file into the run's files/media/images/.
	copied := media.Path
	if !filepath.IsAbs(copied) {
		copied = filepath.Join(run.Dir(), copied)
	}
	if b, err := os.ReadFile(copied); err != nil || string(b) != "\x89PNG not really" || !strings.Contains(copied, "media/images/") {
		t.Errorf("media copy %s: %q %v", copied, b, err)
	}
}

func TestLogBadInput(t *testing.T) {
	t.Parallel()
	run := newRun(t, runcore.Options{})
	wantStatus(t, run.Log(map[string]any{"_x": 1.0}), "Log", codes.InvalidArgument,
		`key "_x" starts with '_', which is reserved for runcore's own keys (_step, _runtime, _timestamp); rename it`)
	wantStatus(t, run.Log(map[string]any{"": 1.0}), "Log", codes.InvalidArgument,
		"key is empty; give every logged value a non-empty name")
	wantStatus(t, run.Log(map[string]any{"x": 1.0}, runcore.WithStep(-1)), "Log", codes.InvalidArgument,
		"step -1 is negative; steps start at 0")
	wantStatus(t, run.Log(map[string]any{"c": make(chan int)}), "Log", codes.InvalidArgument,
		`cannot log "c": unsupported type chan int; log numbers, bools, strings, nil, map[string]any, slices, runcore.Histogram or runcore.Media`)
	wantStatus(t, run.Log(map[string]any{"m": map[int]any{1: 2}}), "Log", codes.InvalidArgument,
		`cannot log "m": map keys must be strings, not int`)

	wantStatus(t, run.Log(map[string]any{"h": runcore.Histogram{Bins: []float64{0, 1}, Counts: []int64{1, 2}}}), "Log", codes.InvalidArgument,
		`cannot log "h": histogram: 2 counts need 3 bin edges, got 2`)

	// What only the sidecar can check is refused asynchronously: the next Flush
	// (or Log, or Finish) returns the sidecar's error and how many rows it lost;
	// the rows sent in other batches land.
	if err := run.Log(map[string]any{"ok": 1.0}); err != nil {
		t.Fatal(err)
	}
	if err := run.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := run.Log(map[string]any{"h": runcore.Histogram{Values: []float64{1, 2}, NumBins: 100000}}); err != nil {
		t.Fatalf("Log queues a histogram with too many bins: %v", err)
	}
	err := run.Flush(testCtx(t))
	wantStatus(t, err, "Log", codes.InvalidArgument, `~row 0: histogram "h": num_bins 100000 is over the limit of 512`)
	var rerr *runcore.Error
	if errors.As(err, &rerr); rerr == nil || rerr.Lost != 1 || rerr.RunID != run.ID() {
		t.Errorf("error %#v: want Lost 1 for run %s", rerr, run.ID())
	}
	if err := run.Flush(testCtx(t)); err != nil {
		t.Errorf("the error is reported once; second Flush: %v", err)
	}
	if err := run.Log(map[string]any{"ok": 2.0}); err != nil {
		t.Fatal(err)
	}
	res, err := run.Finish(testCtx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.HistoryRows != 2 {
		t.Errorf("history rows %d, want 2: %v", res.Run.HistoryRows, history(t, shared.client, run.ID()))
	}
	wantStatus(t, run.Log(map[string]any{"late": 1.0}), "Log", codes.FailedPrecondition,
		"run "+run.ID()+" has finished; Init it again with Resume: runcore.ResumeAllow to log more")
}

// A media file the sidecar cannot read drops its row, which is reported like a
// row with a smaller step; the other rows of the batch land.
func TestLogUnreadableMediaDropsTheRow(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var dropped []runcore.DroppedRow
	run := newRun(t, runcore.Options{OnDropped: func(d runcore.DroppedRow) {
		mu.Lock()
		dropped = append(dropped, d)
		mu.Unlock()
	}})
	missing := filepath.Join(t.TempDir(), "missing.png")
	for _, data := range []map[string]any{{"a": 1.0}, {"img": runcore.Image(missing, ""), "b": 2.0}, {"c": 3.0}} {
		if err := run.Log(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := run.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dropped) != 1 || !strings.HasPrefix(dropped[0].Reason, `media "img": cannot read `+missing) || run.DroppedRows() != 1 {
		t.Errorf("dropped = %+v", dropped)
	}
	if rows := history(t, shared.client, run.ID()); len(rows) != 2 || rows[0]["a"] != 1.0 || rows[1]["c"] != 3.0 {
		t.Errorf("history = %v", rows)
	}
}

// A queue of 4 rows, batches of 2 and one batch in flight: Log blocks again and
// again, and never drops a row; concurrent Log calls each commit their own row.
func TestLogBackpressureNeverDrops(t *testing.T) {
	t.Parallel()
	run := newRun(t, runcore.Options{BufferRows: 4, BatchRows: 2, MaxInFlight: 1})
	const writers, perWriter = 4, 250
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				if err := run.Log(map[string]any{"w": float64(w), "i": float64(i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	res, err := run.Finish(testCtx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.HistoryRows != writers*perWriter || res.Run.Step != writers*perWriter {
		t.Fatalf("history rows %d step %d, want %d", res.Run.HistoryRows, res.Run.Step, writers*perWriter)
	}
	seen := map[[2]float64]bool{}
	for _, r := range history(t, shared.client, run.ID()) {
		key := [2]float64{r["w"].(float64), r["i"].(float64)}
		if seen[key] {
			t.Fatalf("row %v twice", key)
		}
		seen[key] = true
	}
	if len(seen) != writers*perWriter {
		t.Errorf("%d distinct rows", len(seen))
	}
}
