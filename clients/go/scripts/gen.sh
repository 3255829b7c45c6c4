#!/usr/bin/env bash
# Generates the Go stubs of proto/runcore/v1/runcore.proto into gen/runcorev1/ (or
# into the directory given as $1, which then gets the same gen/runcorev1/ layout;
# scripts/check-gen.sh uses that). Only the public API is generated: the WAL proto is
# the sidecar's internal format.
#
# Tools, all pinned, none needed on the system beforehand:
#   protoc-gen-go, protoc-gen-go-grpc  `go install`ed at the versions below into
#                                      clients/go/.bin (git-ignored; Go proxy only)
#   protoc                             the one the Rust build already vendors: the
#                                      protoc-bin-vendored-<os>-<arch> crate at the
#                                      version Cargo.lock pins, found through
#                                      `cargo metadata` (crates.io only). $PROTOC
#                                      overrides it. Its version is written into
#                                      the generated files, so it is checked.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12     # keep equal to google.golang.org/protobuf in go.mod
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2  # google.golang.org/grpc/cmd/protoc-gen-go-grpc
PROTOC_VERSION=36.2                # what `protoc --version` must print (libprotoc X)
MODULE=github.com/runcore/runcore/clients/go

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod="$(cd "$here/.." && pwd)"
repo="$(cd "$mod/../.." && pwd)"
out="${1:-$mod}"
bin="$mod/.bin"
mkdir -p "$bin"

# install_plugin NAME PACKAGE VERSION: go install PACKAGE@VERSION into .bin unless
# the binary there was built from exactly that module version.
install_plugin() {
  local name="$1" pkg="$2" version="$3"
  if [ -x "$bin/$name" ] &&
    go version -m "$bin/$name" 2>/dev/null | awk '$1 == "mod" { print $3 }' | grep -qx "$version"; then
    return
  fi
  echo "gen.sh: installing $pkg@$version into $bin" >&2
  GOBIN="$bin" GOFLAGS=-mod=mod go install "$pkg@$version"
}
install_plugin protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install_plugin protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"

find_vendored_protoc() {
  local os arch crate dir
  case "$(uname -s)" in
    Linux) os=linux ;;
    Darwin) os=macos ;;
    *) echo "gen.sh: no vendored protoc for $(uname -s); set PROTOC to protoc $PROTOC_VERSION" >&2; return 1 ;;
  esac
  case "$(uname -m)" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch_64 ;;
    *) echo "gen.sh: no vendored protoc for $(uname -m); set PROTOC to protoc $PROTOC_VERSION" >&2; return 1 ;;
  esac
  crate="protoc-bin-vendored-$os-$arch"
  # The manifest path of the crate at the version Cargo.lock pins (cargo downloads it
  # from crates.io if this machine has not built the sidecar yet). --locked: never
  # rewrite Cargo.lock from here.
  local meta
  if ! meta="$(cd "$repo" && cargo metadata --format-version 1 --locked 2>"$bin/cargo-metadata.err")"; then
    echo "gen.sh: 'cargo metadata --locked' failed in $repo (run 'cargo build' there first, or set PROTOC to protoc $PROTOC_VERSION):" >&2
    cat "$bin/cargo-metadata.err" >&2
    return 1
  fi
  dir="$(printf '%s' "$meta" |
    grep -o "\"manifest_path\":\"[^\"]*/$crate-[0-9][^\"/]*/Cargo.toml\"" |
    sed -e 's/^"manifest_path":"//' -e 's#/Cargo.toml"$##' | head -n 1)" || true
  if [ -z "$dir" ] || [ ! -f "$dir/bin/protoc" ]; then
    echo "gen.sh: the Rust build in $repo has no $crate crate; set PROTOC to protoc $PROTOC_VERSION" >&2
    return 1
  fi
  # Registry sources may lose the executable bit; run a private copy.
  if [ ! -x "$dir/bin/protoc" ]; then
    install -m 0755 "$dir/bin/protoc" "$bin/protoc"
    echo "$bin/protoc"
  else
    echo "$dir/bin/protoc"
  fi
}
protoc="${PROTOC:-}"
if [ -z "$protoc" ]; then
  protoc="$(find_vendored_protoc)"
fi
if ! got="$("$protoc" --version 2>&1)"; then
  echo "gen.sh: '$protoc --version' failed: $got" >&2
  exit 1
fi
if [ "$got" != "libprotoc $PROTOC_VERSION" ]; then
  echo "gen.sh: $protoc is '$got', but the committed stubs were made by libprotoc $PROTOC_VERSION." >&2
  echo "gen.sh: if Cargo.lock moved to a new protoc-bin-vendored on purpose, set PROTOC_VERSION in $0 to the new version and rerun gen.sh." >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$protoc" -I "$repo/proto" \
  --plugin=protoc-gen-go="$bin/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
  --go_out="$tmp" --go_opt=module="$MODULE" \
  --go-grpc_out="$tmp" --go-grpc_opt=module="$MODULE" \
  runcore/v1/runcore.proto

rm -rf "$out/gen/runcorev1"
mkdir -p "$out/gen"
mv "$tmp/gen/runcorev1" "$out/gen/runcorev1"
echo "gen.sh: wrote $out/gen/runcorev1 ($(ls "$out/gen/runcorev1" | tr '\n' ' ')) with $got, protoc-gen-go $PROTOC_GEN_GO_VERSION, protoc-gen-go-grpc $PROTOC_GEN_GO_GRPC_VERSION"
