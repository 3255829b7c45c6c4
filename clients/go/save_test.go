package runcore_test

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"google.golang.org/grpc/codes"

	runcore "github.com/runcore/runcore/clients/go"
)

func TestSave(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	wd := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(wd, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("these/are/myfiles/a.txt", "a")
	write("these/are/myfiles/b.txt", "b")
	write("ckpt/model.pt", "v1")
	run := newRun(t, runcore.Options{WorkingDir: wd})

	// W&B's layouts: a relative glob keeps its path; base_path cuts a prefix.
	saved, err := run.Save(ctx, "these/are/myfiles/*", runcore.WithPolicy(runcore.SaveNow))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(saved)
	if want := []string{"these/are/myfiles/a.txt", "these/are/myfiles/b.txt"}; !reflect.DeepEqual(saved, want) {
		t.Errorf("saved = %v, want %v", saved, want)
	}
	saved, err = run.Save(ctx, filepath.Join(wd, "these/are/myfiles/a.txt"), runcore.WithBasePath(filepath.Join(wd, "these")), runcore.WithPolicy(runcore.SaveNow))
	if err != nil || !reflect.DeepEqual(saved, []string{"are/myfiles/a.txt"}) {
		t.Errorf("saved with base path = %v, %v", saved, err)
	}
	// "end" copies at finish: the content then, not now.
	if saved, err = run.Save(ctx, "ckpt/*.pt", runcore.WithPolicy(runcore.SaveEnd)); err != nil || !reflect.DeepEqual(saved, []string{"ckpt/model.pt"}) {
		t.Fatalf("saved end = %v, %v", saved, err)
	}
	write("ckpt/model.pt", "v2")
	if _, err := run.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"these/are/myfiles/a.txt": "a", "are/myfiles/a.txt": "a", "ckpt/model.pt": "v2"} {
		if b, err := os.ReadFile(filepath.Join(run.Dir(), rel)); err != nil || string(b) != want {
			t.Errorf("%s in the run dir: %q %v, want %q", rel, b, err, want)
		}
	}
}

func TestSaveBadInput(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	run := newRun(t, runcore.Options{})
	_, err := run.Save(ctx, "*.txt", runcore.WithPolicy("sometimes"))
	wantStatus(t, err, "Save", codes.InvalidArgument, `save: unknown policy "sometimes"; use "live", "now" or "end"`)
	_, err = run.Save(ctx, "../secrets/*")
	wantStatus(t, err, "Save", codes.InvalidArgument, `save: "../secrets/*" contains '..'; name files below a directory without walking up`)
}
