#!/usr/bin/env bash
# Installs every Debian package that kvserve's build, tests and benchmarks need.
# Idempotent: apt-get skips what is already installed. Run as root (or with sudo).
# Usage: install-deps.sh [--build-only]
#   --build-only  only the compiler and the libraries the kvserve binary builds against (what the
#                 Dockerfile's build stage uses): no test, oracle or deployment tooling.
set -euo pipefail

mode=all
case "${1:-}" in
  "") ;;
  --build-only) mode=build ;;
  *) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git ca-certificates ccache
  # libraries (see ../shared/notes/stack.md)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libdnnl-dev prometheus-cpp-dev
  libboost1.81-dev  # the HTTP server: Boost.Beast on Boost.Asio (header-only; libboost-dev is 1.74)
  libicu-dev  # Unicode categories for the tokenizers' pre-tokenizer regexes
  libcurl4-openssl-dev libssl-dev  # hf: downloads (libcurl), SHA-256 checks and TLS (OpenSSL)
)
if [ "$mode" = all ]; then
  PACKAGES+=(
    # tests
    libgtest-dev libgmock-dev libbenchmark-dev
    clang  # the strict build: scripts/clang-check.sh (-Werror, -Wthread-safety)
    libfuzzer-14-dev  # the fuzzers (scripts/fuzz.sh): libFuzzer for clang 14
    python3 python3-numpy python3-grpcio python3-protobuf python3-jinja2 python3-yaml
    python3-jsonschema  # structured output: outputs validated by an independent validator
    python3-pytest python3-venv  # the Python client's tests: pytest, pip install into a venv
    openssl curl  # the TLS tests: throwaway certificates (openssl req), curl --cacert
    prometheus  # promtool and a real Prometheus server for the /metrics tests
    chromium  # the chat page test (driven by npm playwright-core)
    # deployment tests (tests/deploy): the container image is built and run with rootful podman
    # from a debootstrap-made base (see ../shared/notes/containers.md); netavark + iptables
    # publish its ports. Prometheus (promtool) checks the rules, nginx balances gRPC replicas,
    # yamllint checks deploy/.
    podman buildah debootstrap runc netavark aardvark-dns iptables
    nginx-light yamllint
  )
  # Node.js and npm run the llama.cpp oracle (node-llama-cpp). Machines of this kind ship them
  # (from NodeSource); install Debian's only where they are absent, since the two conflict.
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    PACKAGES+=(nodejs npm)
  fi
  # kubectl renders deploy/kubernetes (`kubectl kustomize`). A machine may already have one from
  # another source (it would conflict with Debian's); install Debian's (1.20) only where absent.
  if ! command -v kubectl >/dev/null 2>&1; then
    PACKAGES+=(kubernetes-client)
  fi
fi

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
