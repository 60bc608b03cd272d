# kvserve container image: two stages on debian:bookworm-slim.
#   build:   the project's own CMake build (Release), only the kvserve binary; then the list of
#            Debian packages that own the shared libraries it links (ldd + dpkg -S), so the
#            runtime stage never drifts from what the binary needs.
#   runtime: those packages, the stripped binary, a non-root user. Models come from a mounted
#            volume (/models) or, with `--model hf:OWNER/REPO`, are downloaded into /cache.
# Build (podman needs --format docker to keep the HEALTHCHECK): see docs/DEPLOY.md.
#   podman build --format docker -t kvserve .
#   podman run -p 50051:50051 -p 8080:8080 -v ./models:/models:ro kvserve --model /models/m.gguf

FROM docker.io/library/debian:bookworm-slim AS build
# Only the script's package list for the compiler and libraries (no test or oracle tooling);
# its own layer, so source edits do not reinstall the toolchain.
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN bash /src/scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY proto proto
COPY engine engine
COPY constrain constrain
COPY base base
COPY scheduler scheduler
COPY serving serving
COPY server server
COPY bench bench
# A compiler cache that outlives the layer (BuildKit / buildah cache mount): after a source
# change only the touched files recompile.
RUN --mount=type=cache,target=/ccache,id=kvserve-ccache \
    export CCACHE_DIR=/ccache \
 && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVSERVE_BUILD_TESTS=OFF \
      -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache \
 && cmake --build build -j "$(nproc)" --target kvserve \
 && { ccache --show-stats | grep -iE 'hits|misses' || true; } \
 && mkdir /out && strip -o /out/kvserve build/server/kvserve
# The runtime packages: owners of every shared library the binary loads. Debian lists some
# files under /lib and others under /usr/lib, so ask for both spellings.
RUN set -e; for lib in $(ldd /out/kvserve | awk '$2 == "=>" && $3 ~ /^\// {print $3}'); do \
      dpkg -S "$lib" 2>/dev/null || dpkg -S "/usr${lib#/usr}" 2>/dev/null \
        || dpkg -S "${lib#/usr}" 2>/dev/null || { echo "no package owns $lib" >&2; exit 1; }; \
    done | cut -d: -f1 | sort -u > /out/runtime-packages \
 && cat /out/runtime-packages

FROM docker.io/library/debian:bookworm-slim AS runtime
COPY --from=build /out/runtime-packages /tmp/runtime-packages
# ca-certificates: `hf:` model downloads over HTTPS.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /tmp/runtime-packages
RUN useradd --system --uid 10001 --user-group --home-dir /cache --no-create-home \
      --shell /usr/sbin/nologin kvserve \
 && mkdir -p /models /cache && chown kvserve:kvserve /cache
COPY --from=build /out/kvserve /usr/local/bin/kvserve
# The default model (no --model): found at <prefix>/share/kvserve/ beside <prefix>/bin/kvserve.
COPY models/kvserve-demo.gguf /usr/local/share/kvserve/kvserve-demo.gguf
# Fails the build if a library is missing (the binary would not start).
RUN ! ldd /usr/local/bin/kvserve | grep 'not found' && kvserve --help >/dev/null

USER kvserve
# `hf:` downloads (and the demo:random test model) are written here; mount a volume to keep them.
ENV KVSERVE_CACHE=/cache
VOLUME ["/cache"]
WORKDIR /cache
# gRPC (kvserve.v1.Generation, grpc.health.v1.Health) and HTTP (/metrics, /health).
EXPOSE 50051 8080
HEALTHCHECK --interval=15s --timeout=6s --start-period=120s --retries=3 \
  CMD ["kvserve", "health", "--target", "127.0.0.1:50051", "--timeout", "5"]
# Exec form: kvserve is PID 1 and gets SIGTERM itself, then drains (--drain-timeout, 30 s):
# give `podman stop -t` / terminationGracePeriodSeconds more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/kvserve", "serve"]
