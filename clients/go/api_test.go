package runcore_test

// The read API (Client): ListRuns, GetRun, ScanHistory, UpdateRun, ListFiles,
// ReadFile and DeleteRun against the real sidecar, and a sidecar restarted under
// a Client.

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"google.golang.org/grpc/codes"

	runcore "github.com/runcore/runcore/clients/go"
)

func TestClientReadsEditsAndDeletesRuns(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	project := "go-api-" + randomSuffix()
	wd := t.TempDir()
	blob := bytes.Repeat([]byte("0123456789"), 70_000) // several ReadFile chunks
	if err := os.WriteFile(filepath.Join(wd, "model.bin"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	run := newRun(t, runcore.Options{Project: project, Name: "before", Tags: []string{"a"},
		Config: map[string]any{"lr": 0.1}, WorkingDir: wd})
	for i := range 20 {
		if err := run.Log(map[string]any{"loss": float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(wd, "notes.txt"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"model.bin", "notes.txt"} {
		if _, err := run.Save(ctx, name, runcore.WithPolicy(runcore.SaveNow)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := runcore.Connect(ctx, runcore.Options{Address: shared.addr})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c.DeleteRun(ctx, run.ID()), "DeleteRun", codes.FailedPrecondition, "~finish it")
	if _, err := run.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}

	runs, err := c.ListRuns(ctx, project)
	if err != nil || len(runs) != 1 || runs[0].ID != run.ID() || runs[0].State != runcore.StateFinished {
		t.Fatalf("ListRuns = %+v, %v", runs, err)
	}
	got, err := c.GetRun(ctx, run.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got.Run.Name != "before" || got.Config["lr"] != 0.1 || got.Summary["loss"] != 19.0 {
		t.Errorf("GetRun = %+v", got)
	}

	var steps []int64
	for r, err := range c.ScanHistory(ctx, run.ID(), runcore.ScanOptions{Keys: []string{"loss"}, PageSize: 3,
		MinStep: ptr[int64](5), MaxStep: ptr[int64](10)}) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Values["loss"] != float64(r.Step) {
			t.Errorf("row %d: %v", r.Step, r.Values)
		}
		steps = append(steps, r.Step)
	}
	if want := []int64{5, 6, 7, 8, 9}; !reflect.DeepEqual(steps, want) {
		t.Errorf("steps %v, want %v", steps, want)
	}
	n := 0
	for range c.ScanHistory(ctx, run.ID(), runcore.ScanOptions{}) {
		n++
		if n == 3 {
			break // ends the stream early
		}
	}

	tags := []string{"a", "b"}
	edited, err := c.UpdateRun(ctx, run.ID(), runcore.RunUpdate{Name: ptr("after"), Tags: &tags,
		Config: map[string]any{"extra": "yes"}, Summary: map[string]any{"acc": 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if edited.Run.Name != "after" || !reflect.DeepEqual(edited.Run.Tags, tags) || edited.Config["extra"] != "yes" ||
		edited.Summary["acc"] != 0.5 || edited.Run.State != runcore.StateFinished {
		t.Errorf("UpdateRun = %+v", edited)
	}
	_, err = c.UpdateRun(ctx, run.ID(), runcore.RunUpdate{Name: ptr("")})
	wantStatus(t, err, "UpdateRun", codes.InvalidArgument, "~name must be")

	files, err := c.ListFiles(ctx, run.ID())
	if err != nil || len(files) != 2 || files[0].Name != "model.bin" || files[0].Size != int64(len(blob)) ||
		files[1].Name != "notes.txt" {
		t.Fatalf("ListFiles = %+v, %v", files, err)
	}
	page, next, err := c.ListFilesPage(ctx, run.ID(), "", 1)
	if err != nil || len(page) != 1 || page[0].Name != "model.bin" || next == "" {
		t.Fatalf("ListFilesPage first = %+v, %q, %v", page, next, err)
	}
	page, next, err = c.ListFilesPage(ctx, run.ID(), next, 1)
	if err != nil || len(page) != 1 || page[0].Name != "notes.txt" || next != "" {
		t.Fatalf("ListFilesPage last = %+v, %q, %v", page, next, err)
	}
	_, _, err = c.ListFilesPage(ctx, run.ID(), "", 10_001)
	wantStatus(t, err, "ListFiles", codes.InvalidArgument, "~page_size")
	var buf bytes.Buffer
	written, err := c.ReadFile(ctx, run.ID(), "model.bin", &buf)
	if err != nil || written != int64(len(blob)) || !bytes.Equal(buf.Bytes(), blob) {
		t.Fatalf("ReadFile: %d bytes, %v", written, err)
	}
	_, err = c.ReadFile(ctx, run.ID(), "../run.json", &buf)
	wantStatus(t, err, "ReadFile", codes.InvalidArgument, "~without '..'")

	if err := c.DeleteRun(ctx, run.ID()); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetRun(ctx, run.ID())
	wantStatus(t, err, "GetRun", codes.NotFound, "~not found")
}

func TestClientReconnectsToARestartedSidecar(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	sc := startSidecar(t)
	run := newRun(t, runcore.Options{Address: sc.addr, Project: "p"})
	if _, err := run.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}
	c, err := runcore.Connect(ctx, runcore.Options{Address: sc.addr})
	if err != nil {
		t.Fatal(err)
	}
	sc.kill(t)
	if err := sc.start(); err != nil {
		t.Fatal(err)
	}
	runs, err := c.ListRuns(ctx, "p")
	if err != nil || len(runs) != 1 || runs[0].ID != run.ID() {
		t.Fatalf("ListRuns after a restart = %+v, %v", runs, err)
	}
}

func ptr[T any](v T) *T { return &v }
