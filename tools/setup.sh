#!/usr/bin/env bash
# Installs the Debian packages ml3 needs (only the missing ones), then
# configures and builds it (Release, -j = cores). Idempotent and quiet when
# there is nothing to do. Environment: ML3_BUILD_DIR (default build),
# ML3_CMAKE_ARGS (extra cmake arguments, e.g. -DML3_SANITIZE=ON).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  libtorch-dev                 # LibTorch 1.13 (CPU)
  libgloo-dev                  # Gloo headers + library behind LibTorch's c10d (distributed runs, src/run/dist.cpp)
  libmujoco-dev libqhull-dev   # MuJoCo 2.2; its CMake config needs qhull's headers
  libopenblas0-pthread         # optimised BLAS behind libblas.so.3 (LibTorch is 3-6x faster)
  libblas-dev                  # links src/policy/fast_pg.cpp to libblas.so.3 (resolved to OpenBLAS at run time)
  libeigen3-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-matplotlib   # learning-curve plots (tools/plot.py)
  clang                        # libFuzzer for the policy-loader fuzzer (-DML3_FUZZ=ON, docs/deploy.md)
  libegl-dev libegl-mesa0 libgl1-mesa-dri   # offscreen rendering (ml3 render, ml3-deploy --video; optional at build time)
  zlib1g-dev                   # PNG strips of rendered frames
  libonnx-dev libprotobuf-dev  # ml3 export --format onnx: ONNX's protobuf classes and checker (deploy/onnx_export.cpp)
  python3-onnx                 # the ONNX export test checks the file with onnx.checker as users would
  libhdf5-dev                  # ml3 demos --import-minari / --export-minari (envs/minari.cpp)
  python3-h5py                 # the Minari import test writes its dataset with h5py as users' tooling would
  nodejs                       # runs ONNX Runtime (npm: onnxruntime-node) in the ONNX parity test
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm comes with Debian's nodejs as its own package (npm), inside NodeSource's
# nodejs build; install Debian's only when there is no npm at all (the two conflict).
if ! command -v npm >/dev/null; then
  echo "setup: installing npm"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

build_dir=${ML3_BUILD_DIR:-build}
mkdir -p "$build_dir"
log="$build_dir/setup.log"
# ONNX Runtime for Node (not a Debian package): once per checkout, into .node/
# (shared by every build folder: build, build-asan, build-tsan); the ONNX
# parity test finds it there (tests/onnx_parity.js). Its CPU library is inside
# the npm package; ONNXRUNTIME_NODE_INSTALL=skip stops its install script from
# fetching the optional CUDA provider from NuGet.
ort_version=1.30.0
node_dir=.node
if [ ! -f "$node_dir/node_modules/onnxruntime-node/package.json" ] ||
   ! grep -q "\"version\": \"$ort_version\"" "$node_dir/node_modules/onnxruntime-node/package.json"; then
  echo "setup: installing onnxruntime-node@$ort_version (npm) into $node_dir"
  mkdir -p "$node_dir"
  ONNXRUNTIME_NODE_INSTALL=skip npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$node_dir" "onnxruntime-node@$ort_version" >/dev/null
fi
# shellcheck disable=SC2086
if ! cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${ML3_CMAKE_ARGS:-} >"$log" 2>&1; then
  cat "$log"; echo "setup: cmake configure failed (log: $log)"; exit 1
fi
if ! cmake --build "$build_dir" -j "$(nproc)" >"$log" 2>&1; then
  grep -E "error|Error" "$log" | head -40; echo "setup: build failed (full log: $log)"; exit 1
fi
if grep -q "warning:" "$log"; then grep -A3 "warning:" "$log" | head -40; fi
exit 0
