package runcore_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	runcore "github.com/runcore/runcore/clients/go"
)

func TestInitGeneratesIdentityAndSendsClientInfo(t *testing.T) {
	t.Parallel()
	config := map[string]any{
		"lr":        0.01,
		"epochs":    int64(3),
		"optimizer": map[string]any{"name": "adam", "betas": []any{0.9, 0.999}},
		"debug":     false,
	}
	run := newRun(t, runcore.Options{Project: "", Config: config, Tags: []string{"a", "b"}, Notes: "n", Group: "g", JobType: "train"})
	if !regexp.MustCompile(`^[a-z0-9]{8}$`).MatchString(run.ID()) {
		t.Errorf("generated id %q is not 8 characters of [a-z0-9]", run.ID())
	}
	if run.Name() == "" || run.Project() != "go-tests" || run.Path() != "go-tests/"+run.ID() {
		t.Errorf("name %q project %q path %q", run.Name(), run.Project(), run.Path())
	}
	info := run.Info()
	if info.State != runcore.StateRunning || info.Group != "g" || info.JobType != "train" || info.Notes != "n" ||
		!reflect.DeepEqual(info.Tags, []string{"a", "b"}) || info.StartTime.IsZero() || run.Resumed() || run.StartingStep() != 0 {
		t.Errorf("info = %+v", info)
	}
	if st, err := os.Stat(run.Dir()); err != nil || !st.IsDir() {
		t.Errorf("run dir %s: %v", run.Dir(), err)
	}

	got := getRun(t, shared.client, run.ID())
	gotConfig := map[string]any{}
	for k, v := range got.GetConfig() {
		gotConfig[k] = runcore.FromValue(v)
	}
	if !reflect.DeepEqual(gotConfig, config) {
		t.Errorf("config = %#v, want %#v", gotConfig, config)
	}

	// ClientInfo: pid, hostname and boot id reach run.json.
	b, err := os.ReadFile(filepath.Join(filepath.Dir(run.Dir()), "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rj struct {
		Pid    int64  `json:"client_pid"`
		Host   string `json:"client_host"`
		BootID string `json:"client_boot_id"`
	}
	if err := json.Unmarshal(b, &rj); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if rj.Pid != int64(os.Getpid()) || rj.Host != host {
		t.Errorf("run.json client = %+v, want pid %d host %q", rj, os.Getpid(), host)
	}
	if boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil && rj.BootID != strings.TrimSpace(string(boot)) {
		t.Errorf("client_boot_id = %q, want %q", rj.BootID, strings.TrimSpace(string(boot)))
	}
}

func TestInitResume(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	id := "resume-" + randomSuffix()
	first := newRun(t, runcore.Options{ID: id})
	for i := range 3 {
		if err := first.Log(map[string]any{"i": float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := first.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}

	_, err := runcore.Init(ctx, runcore.Options{Address: shared.addr, Project: "go-tests", ID: id})
	wantStatus(t, err, "Init", codes.AlreadyExists,
		`run "`+id+`" already exists in project "go-tests"; resume it with resume="allow" or "must", or choose another id`)

	_, err = runcore.Init(ctx, runcore.Options{Address: shared.addr, Project: "go-tests", ID: id + "-missing", Resume: runcore.ResumeMust})
	wantStatus(t, err, "Init", codes.NotFound, `run "`+id+`-missing" not found; Init it first (ids are unique per data dir)`)

	// Resuming continues at the last step + 1, and after the last seq the run
	// holds: rows logged now must land, not be taken for resent batches.
	again := newRun(t, runcore.Options{ID: id, Resume: runcore.ResumeAllow})
	if !again.Resumed() || again.StartingStep() != 3 || again.Step() != 3 {
		t.Fatalf("resumed %v starting step %d step %d, want true 3 3", again.Resumed(), again.StartingStep(), again.Step())
	}
	for i := 3; i < 5; i++ {
		if err := again.Log(map[string]any{"i": float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := again.Finish(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	rows := history(t, shared.client, id)
	if len(rows) != 5 || res.Run.HistoryRows != 5 {
		t.Fatalf("history = %v (history_rows %d), want 5 rows", rows, res.Run.HistoryRows)
	}
	for i, r := range rows {
		if r["_step"] != int64(i) || r["i"] != float64(i) {
			t.Errorf("row %d = %v", i, r)
		}
	}
}

func TestInitBadInput(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, err := runcore.Init(ctx, runcore.Options{Address: shared.addr, ID: "no/slashes"})
	wantStatus(t, err, "Init", codes.InvalidArgument,
		`run id "no/slashes" must be 1..64 characters of letters, digits, '-' and '_'`)

	_, err = runcore.Init(ctx, runcore.Options{Address: shared.addr, Resume: "sometimes"})
	wantStatus(t, err, "Init", codes.InvalidArgument, `unknown resume mode "sometimes"; use never, allow or must`)

	_, err = runcore.Init(ctx, runcore.Options{Address: shared.addr, Config: map[string]any{"c": make(chan int)}})
	wantStatus(t, err, "Init", codes.InvalidArgument, `~config key "c": unsupported type chan int`)
}

// A resumed run's Config is its whole config as the sidecar holds it, with the keys
// given to the resuming Init merged in.
func TestInitResumeHasTheWholeConfig(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	first := newRun(t, runcore.Options{Config: map[string]any{"lr": 0.1, "arch": map[string]any{"layers": 3}}})
	if _, err := first.UpdateConfig(ctx, map[string]any{"epochs": 5}); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"lr": 0.1, "arch": map[string]any{"layers": int64(3)}, "epochs": int64(5)}
	if got := first.Config(); !reflect.DeepEqual(got, want) {
		t.Errorf("Config after UpdateConfig = %v, want %v", got, want)
	}
	if _, err := first.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}
	again := newRun(t, runcore.Options{ID: first.ID(), Resume: runcore.ResumeAllow, Config: map[string]any{"seed": 7}})
	want["seed"] = int64(7)
	if got := again.Config(); !again.Resumed() || !reflect.DeepEqual(got, want) {
		t.Errorf("resumed %v, Config = %v, want %v", again.Resumed(), got, want)
	}
}
