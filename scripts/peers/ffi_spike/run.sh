#!/usr/bin/env bash
# The FFI experiments of perf-analysis.md §24: can nowt hand XLA's CPU plugin a kernel of its own, such as oneDNN's
# backward-weights convolution, which the plugin never calls? Builds main.go with handler.c (a handler that doubles
# an array) and conv_bwd_weights.cc (oneDNN's backward weights) against the go-xla copy in third_party/, with a
# temporary accessor for the plugin's PJRT_Api, and runs it:
#
#   scripts/peers/ffi_spike/run.sh [PLUGIN]      # default ~/.local/lib/go-xla/pjrt_c_api_cpu_plugin.so
#   SPIKE_MINOR=3 scripts/peers/ffi_spike/run.sh # the FFI API minor version the doubling handler reports (default 1)
#
# Needs the XLA FFI C header, taken from jaxlib (.peers-venv, which bench-peers.sh installs), and oneDNN 2.x's
# (Debian: apt-get install libdnnl-dev). Prints "scale2 result: [2 4 6 8] … handler calls: 1" when the plugin ran
# the first handler, then for four of ResNet-20's weight gradients at batch 64 the median time of a whole execution
# of a program that is only the backward-weights call, and its worst error against a plain-Go reference.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
here="$root/scripts/peers/ffi_spike"
plugin=${1:-$HOME/.local/lib/go-xla/pjrt_c_api_cpu_plugin.so}
header=$(ls "$root"/.peers-venv/lib/python3*/site-packages/jaxlib/include/xla/ffi/api/c_api.h 2>/dev/null | head -1)
[ -n "$header" ] || { echo "run.sh: no jaxlib FFI header: install JAX into .peers-venv (scripts/bench-peers.sh does)" >&2; exit 2; }
work=$(mktemp -d)
accessor="$root/third_party/go-xla/pkg/pjrt/zz_ffi_spike_capi.go"
trap 'rm -rf "$work" "$accessor"' EXIT
cat >"$accessor" <<'GO'
package pjrt

import "unsafe"

// CAPIPointer (the FFI experiment's, removed after its build) returns the plugin's PJRT_Api*.
func (p *Plugin) CAPIPointer() unsafe.Pointer { return unsafe.Pointer(p.api) }
GO
mkdir -p "$root/.ffi-spike"
cp "$here/main.go" "$here/handler.c" "$here/conv_bwd_weights.cc" "$root/.ffi-spike/"
cp "$header" "$root/.ffi-spike/xla_ffi_c_api.h"
sed -i '/^\/\/go:build ignore$/d' "$root/.ffi-spike/main.go"
(cd "$root" && go build -o "$work/spike" ./.ffi-spike)
rm -rf "$root/.ffi-spike"
"$work/spike" "$plugin"
