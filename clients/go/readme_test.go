package runcore_test

import (
	"os"
	"strings"
	"testing"
)

// The README's example is examples/quickstart/main.go, which go vet compiles and
// scripts/test.sh runs: keep the two identical.
func TestReadmeShowsTheQuickstartExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("examples/quickstart/main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(src), "\npackage main\n")
	if !ok {
		t.Fatal("examples/quickstart/main.go has no package clause")
	}
	if !strings.Contains(string(readme), "```go\npackage main\n"+body+"```\n") {
		t.Error("README.md does not show examples/quickstart/main.go as it is; copy the file (from `package main`) into the README's go block")
	}
}
