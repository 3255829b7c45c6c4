package runcore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	runcore "github.com/runcore/runcore/clients/go"
)

func TestArtifactsLogUseDownload(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	src := t.TempDir()
	for i := range 3 {
		p := filepath.Join(src, "data", fmt.Sprintf("%d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("row %d", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	name := fmt.Sprintf("go-ds-%d", time.Now().UnixNano())
	spec := runcore.ArtifactSpec{
		Name: name, Type: "dataset", Metadata: map[string]any{"rows": 3}, Aliases: []string{"raw"},
		Dir:        src,
		Bytes:      map[string][]byte{"notes/readme.md": []byte("streamed")},
		References: map[string]string{"remote.tar": "s3://bucket/remote.tar"},
	}
	maker := newRun(t, runcore.Options{})
	v0, err := maker.LogArtifact(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if v0.Version != "v0" || v0.FileCount != 5 || v0.Existing || len(v0.Digest) != 64 {
		t.Fatalf("logged %+v", v0)
	}
	again, err := maker.LogArtifact(ctx, spec)
	if err != nil || !again.Existing || again.Version != "v0" {
		t.Fatalf("the same content again: %+v, %v", again, err)
	}

	user := newRun(t, runcore.Options{})
	used, err := user.UseArtifact(ctx, name+":raw")
	if err != nil {
		t.Fatal(err)
	}
	if used.Version != "v0" || used.Metadata["rows"] != int64(3) || len(used.UsedBy) != 1 {
		t.Fatalf("used %+v", used)
	}
	root, skipped, err := used.Download(ctx, filepath.Join(t.TempDir(), "dl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0] != "s3://bucket/remote.tar" {
		t.Errorf("skipped = %v", skipped)
	}
	for rel, want := range map[string]string{"data/1.txt": "row 1", "notes/readme.md": "streamed"} {
		if b, err := os.ReadFile(filepath.Join(root, rel)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", rel, b, err, want)
		}
	}
	if _, err := user.UseArtifact(ctx, name+"-missing:latest"); runcore.Code(err) != codes.NotFound {
		t.Errorf("a missing artifact: %v, want NOT_FOUND", err)
	}
	if _, err := maker.LogArtifact(ctx, runcore.ArtifactSpec{Name: name, Type: "model", Dir: src}); runcore.Code(err) != codes.InvalidArgument {
		t.Errorf("another type under the name: %v, want INVALID_ARGUMENT", err)
	}
}
