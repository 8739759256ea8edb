#!/usr/bin/env bash
# Assembles a CUDA 13.0 toolkit from PyPI wheels and exports what candle's `cuda` feature
# needs to compile and link, on a machine with neither a system CUDA install nor a GPU.
#
#   source .ci/cuda-toolkit.sh [ROOT]     (ROOT default: $EMBER_CUDA_ROOT or ~/.cache/ember-cuda)
#   cargo build --release --features cuda
#
# - The wheels are installed once into ROOT/venv (a second source is a no-op check), so
#   CI steps and later runs share them.
# - Only the CUDA 13 wheels ship nvcc; cccl holds the thrust/cub headers candle's kernels
#   include; cudart, nvrtc, cublas and curand are linked. The versions below are one
#   consistent CUDA 13.0 set: change them together.
# - No wheel ships libcuda.so (the driver provides it). For linking, ROOT/cuda/lib64/stubs
#   gets a stub exporting every driver function cudarc declares, each returning
#   CUDA_ERROR_STUB_LIBRARY (34). A binary built this way needs libcuda.so.1 to start:
#   with a driver installed it uses the real one; without, put the stub first with
#   `export LD_LIBRARY_PATH="$EMBER_CUDA_STUB_PATH:$LD_LIBRARY_PATH"` and CUDA devices are
#   then reported as absent (a clear error) instead of the binary failing to start.
# - Running on a GPU needs an R580 or newer driver (it JIT-compiles candle's CUDA 13 PTX).
# - NCCL (the `nccl` feature): linked against a stub libnccl.so (soname libnccl.so.2, in
#   lib64/stubs; ROOT/rt holds it for running without a GPU). To run on GPUs, source this
#   with EMBER_CUDA_NCCL=1: PyPI's nvidia-nccl-cu13 is installed and its libnccl.so.2
#   linked into lib64, which the library path searches first.
# - CUDA_COMPUTE_CAP (default 90 here) picks the PTX target; set it to your GPU's
#   (e.g. 80 for A100, 89 for L4/RTX 40xx) before sourcing.
_ember_cuda() {
    local root=${1:-${EMBER_CUDA_ROOT:-$HOME/.cache/ember-cuda}}
    local pkgs=(
        nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
        nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88
        nvidia-cublas==13.1.0.3 nvidia-curand==10.4.0.35
    )
    local stamp="$root/installed"
    mkdir -p "$root" || return 1
    if [ "$(cat "$stamp" 2>/dev/null)" != "${pkgs[*]}" ]; then
        echo "cuda-toolkit: installing the CUDA 13.0 wheels into $root/venv" >&2
        [ -x "$root/venv/bin/pip" ] || python3 -m venv "$root/venv" || return 1
        "$root/venv/bin/pip" install --quiet --disable-pip-version-check "${pkgs[@]}" || return 1
        echo "${pkgs[*]}" >"$stamp"
    fi
    local wheels
    wheels=$("$root/venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))') || return 1
    local t="$root/cuda"
    mkdir -p "$t/lib64/stubs" "$root/rt" || return 1
    local d f b
    for d in bin include nvvm; do ln -sfn "$wheels/$d" "$t/$d"; done
    for f in "$wheels"/lib/*.so.*; do
        b=$(basename "$f")
        ln -sfn "$f" "$t/lib64/$b"
        ln -sfn "$f" "$t/lib64/${b%%.so*}.so"
    done
    if [ ! -f "$t/lib64/stubs/libcuda.so" ] || [ ! -f "$t/lib64/stubs/libnccl.so" ]; then
        # The driver and NCCL APIs cudarc declares, from its source (fetched by cargo).
        local src
        # (`--features cuda` makes cargo resolve, and download, candle's CUDA dependencies.)
        src=$(cargo metadata --format-version 1 --features cuda 2>/dev/null | python3 -c '
import json, sys
pkgs = json.load(sys.stdin)["packages"]
print(next(p["manifest_path"] for p in pkgs if p["name"] == "cudarc").rsplit("/", 1)[0])' 2>/dev/null) || src=
        if [ ! -f "$src/src/driver/sys/mod.rs" ]; then
            # Outside Ember's source directory: the newest cudarc 0.19 in cargo's cache.
            src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* 2>/dev/null | tail -1) || src=
        fi
        if [ ! -f "$src/src/driver/sys/mod.rs" ]; then
            echo "cuda-toolkit: cudarc's source not found; source this script from Ember's source directory" >&2
            return 1
        fi
        grep -ohE 'pub unsafe fn cu[A-Za-z0-9_]+\(' "$src/src/driver/sys/mod.rs" | sort -u |
            sed -E 's/pub unsafe fn (.*)\(/int \1(void) { return 34; }/' >"$t/libcuda_stub.c"
        gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$t/lib64/stubs/libcuda.so" "$t/libcuda_stub.c" || return 1
        # NCCL (the `nccl` feature links libnccl): every function returns ncclSystemError
        # (2), the two that return a message return this one.
        {
            echo 'const char *ncclGetErrorString(int r) { return "libnccl.so.2 is the build stub: install NCCL (pip install nvidia-nccl-cu13) and put its lib directory on LD_LIBRARY_PATH"; }'
            echo 'const char *ncclGetLastError(void *c) { return ncclGetErrorString(2); }'
            grep -ohE 'pub unsafe fn nccl[A-Za-z0-9_]+\(' "$src/src/nccl/sys/mod.rs" | sort -u |
                grep -vE 'ncclGetErrorString|ncclGetLastError' |
                sed -E 's/pub unsafe fn (.*)\(/int \1(void) { return 2; }/'
        } >"$t/libnccl_stub.c"
        gcc -shared -fPIC -Wl,-soname,libnccl.so.2 -o "$t/lib64/stubs/libnccl.so" "$t/libnccl_stub.c" || return 1
    fi
    ln -sfn "$t/lib64/stubs/libcuda.so" "$root/rt/libcuda.so.1"
    ln -sfn "$t/lib64/stubs/libnccl.so" "$root/rt/libnccl.so.2"
    # The real NCCL, for a GPU machine that runs the `nccl` feature (EMBER_CUDA_NCCL=1):
    # PyPI's wheel, linked and loaded from lib64 ahead of the stub.
    if [ "${EMBER_CUDA_NCCL:-0}" = 1 ]; then
        "$root/venv/bin/pip" install --quiet --disable-pip-version-check nvidia-nccl-cu13==2.30.7 || return 1
        local nccl
        nccl=$("$root/venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "nccl", "lib"))') || return 1
        ln -sfn "$nccl/libnccl.so.2" "$t/lib64/libnccl.so.2"
        ln -sfn "$nccl/libnccl.so.2" "$t/lib64/libnccl.so"
    fi
    export CUDA_HOME="$t" CUDA_PATH="$t" PATH="$t/bin:$PATH"
    export LIBRARY_PATH="$t/lib64:$t/lib64/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
    # The toolkit's shared libraries (cublas, curand, nvrtc, cudart) at run time.
    export LD_LIBRARY_PATH="$t/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # Where the libcuda.so.1 stub lies, for machines without a driver.
    export EMBER_CUDA_STUB_PATH="$root/rt"
    export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=13000
    export CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-$(nproc)}
}
_ember_cuda "$@"
