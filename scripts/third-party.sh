#!/usr/bin/env bash
# Rebuilds third_party/ from the released modules and nowt's patches (third_party/README.md): each module's
# source as the Go module proxy serves it, less what nowt's build never reads (docs, examples, tests), with its
# patch from third_party/patches applied and gofmt run over it.
#
#   scripts/third-party.sh          rewrite third_party/<module> (after changing a patch, or to move to a new release)
#   scripts/third-party.sh -check   rebuild into a temporary folder and fail if third_party/ differs from it
#   scripts/third-party.sh -patches write each patch anew as the difference between the release (as copied, gofmt
#                                   run) and third_party/<module> as it is (after editing the copy), then -check
set -euo pipefail
cd "$(dirname "$0")/.."

# module path, version, folder under third_party, patch under third_party/patches
modules=(
  "github.com/gomlx/go-xla v0.1.4 go-xla go-xla-v0.1.4-custom-call.patch"
  "github.com/gomlx/gomlx v0.26.0 gomlx gomlx-v0.26.0-onednn-convolution.patch"
)
# Left out of every copy: not part of any package nowt builds.
drop=(docs examples docker .github .golangci.yml internal/tests internal/cmd)

check=0 patches=0
case "${1:-}" in
  "") ;;
  -check) check=1 ;;
  -patches) patches=1 ;;
  *) sed -n 2,10p "$0" >&2; exit 2 ;;
esac

out=third_party
if [ $check = 1 ] || [ $patches = 1 ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi

status=0
for m in "${modules[@]}"; do
  read -r path version folder patch <<<"$m"
  src=$(GOFLAGS=-mod=mod go mod download -json "$path@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  if [ -z "$src" ] || [ ! -d "$src" ]; then
    echo "third-party.sh: could not download $path@$version (is the Go module proxy reachable?)" >&2
    exit 1
  fi
  dest=$out/$folder
  rm -rf "$dest"
  mkdir -p "$dest"
  cp -R "$src"/. "$dest"/
  chmod -R u+w "$dest"
  for d in "${drop[@]}"; do rm -rf "${dest:?}/$d"; done
  find "$dest" \( -name '*_test.go' -o -name testdata \) -prune -exec rm -rf {} +
  gofmt -w "$dest" # a few released files predate this gofmt; the project's `gofmt -l .` covers the copies too
  if [ $patches = 1 ]; then
    # The patch, from the release as copied to the copy as edited: `diff -ruN a b` in a folder holding both, so
    # that its paths read a/... and b/... as `patch -p1` expects, less the timestamps diff writes.
    mkdir -p "$out/diff/$folder" && mv "$dest" "$out/diff/$folder/a" && cp -R "third_party/$folder" "$out/diff/$folder/b"
    status_diff=0
    (cd "$out/diff/$folder" && diff -ruN a b) >"$out/$patch" || status_diff=$?
    if [ "$status_diff" != 1 ]; then
      echo "third-party.sh: third_party/$folder does not differ from $path@$version, or diff failed: patches/$patch left as it is" >&2
      exit 1
    fi
    sed -E 's/^(---|\+\+\+) ([^\t]*)\t.*$/\1 \2/' "$out/$patch" >"third_party/patches/$patch"
    echo "third_party/patches/$patch: written from third_party/$folder"
    continue
  fi
  (cd "$dest" && patch -s -p1 <"$OLDPWD/third_party/patches/$patch")
  gofmt -w "$dest"
  if [ $check = 1 ]; then
    if ! diff -r -q "$dest" "third_party/$folder"; then
      echo "third-party.sh: third_party/$folder is not $path@$version with patches/$patch: run scripts/third-party.sh" >&2
      status=1
    fi
  else
    echo "third_party/$folder: $path@$version with patches/$patch"
  fi
done
if [ $patches = 1 ]; then
  "$0" -check # the patches just written rebuild third_party/ as it is
fi
exit $status
