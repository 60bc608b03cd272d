#!/usr/bin/python3
"""Fails when a source file includes from a layer above its own (docs/ARCHITECTURE.md).

Layers, top to bottom; a layer may include its own headers and those of the layers listed for it:
  server/cli                 the binary: everything below, and the protos (its client commands)
  server/grpc, server/http   transports: never each other; only grpc includes the protos
  server/frontend            transport-independent generation: models, serving and below
  server/models (+ jinja/)   model sources, codecs, chat templates: engine and base
  constrain                  structured output (grammars, token masks): engine and base
  serving                    the engine loop: scheduler, engine, base
  scheduler                  policy: base only (no engine, no threads, no transports)
  engine                     numbers: base only
  base                       nothing of kvserve
Tests under tests/<layer>/ follow their layer. Third-party libraries of one layer (gRPC,
Boost.Beast/Asio, OpenSSL, libcurl, prometheus-cpp, oneDNN) are checked the same way. Prints every violation, exits 1 if any.

  check_layers.py [SOURCE_DIR]
  check_layers.py --self-test   (a small tree with known violations must be refused)
"""
import os
import re
import sys

# Allowed dependencies of each layer (besides itself).
ALLOWED = {
    "base": set(),
    "engine": {"base"},
    "scheduler": {"base"},
    "serving": {"scheduler", "engine", "base"},
    "constrain": {"engine", "base"},
    "jinja": {"base"},
    "models": {"jinja", "engine", "base"},
    "frontend": {"models", "jinja", "serving", "scheduler", "constrain", "engine", "base"},
    "grpc": {"proto", "frontend", "models", "jinja", "serving", "scheduler", "constrain", "engine", "base"},
    "http": {"frontend", "models", "jinja", "serving", "scheduler", "constrain", "engine", "base"},
    "cli": {"grpc", "http", "proto", "frontend", "models", "jinja", "serving", "scheduler",
            "constrain", "engine", "base"},
    "bench": {"serving", "scheduler", "constrain", "engine", "base"},
}
# Test helpers shared downward: tests/engine's synthetic models serve the layers above it.
TEST_HELPERS = {"base": "tests/base/", "engine": "tests/engine/", "scheduler": "tests/scheduler/"}

# Path prefix of an included header (or of a source file) -> its layer; the longest prefix wins.
PREFIXES = [
    ("server/models/jinja/", "jinja"),
    ("server/models/", "models"),
    ("server/frontend/", "frontend"),
    ("server/grpc/", "grpc"),
    ("server/http/", "http"),
    ("server/cli/", "cli"),
    ("serving/", "serving"),
    ("constrain/", "constrain"),
    ("scheduler/", "scheduler"),
    ("engine/", "engine"),
    ("base/", "base"),
    ("bench/", "bench"),
    ("kvserve/v1/", "proto"),
    ("grpc/health/v1/", "proto"),
    # third-party libraries that belong to one layer
    ("grpcpp/", "grpc-lib"),
    ("boost/", "boost-lib"),
    ("openssl/", "openssl-lib"),
    ("curl/", "curl-lib"),
    ("prometheus/", "prometheus-lib"),
    ("oneapi/dnnl/", "dnnl-lib"),
]
LIBRARY_USERS = {
    "grpc-lib": {"grpc", "cli"},
    "boost-lib": {"http"},
    "openssl-lib": {"http", "models"},
    "curl-lib": {"models"},
    "prometheus-lib": {"frontend"},
    "dnnl-lib": {"engine"},
}
# tests/<folder>/ -> the layer its tests belong to.
TEST_FOLDERS = {"base": "base", "engine": "engine", "scheduler": "scheduler",
                "serving": "serving", "constrain": "constrain", "tokenizer": "engine", "server": "cli", "fuzz": "cli"}
INCLUDE = re.compile(r'^\s*#\s*include\s+[<"]([^">]+)[">]')
SOURCE_ENDINGS = (".h", ".cc", ".inc", ".in")


def layer_of(path):
    for prefix, layer in PREFIXES:
        if path.startswith(prefix):
            return layer
    return None


def file_layer(rel):
    if rel.startswith("tests/"):
        folder = rel.split("/")[1]
        return TEST_FOLDERS.get(folder)
    return layer_of(rel)


def check(root):
    problems = []
    for top in ["base", "engine", "scheduler", "serving", "server", "bench", "tests"]:
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for name in sorted(names):
                if not name.endswith(SOURCE_ENDINGS):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                own = file_layer(rel)
                if own is None:
                    if rel.startswith("server/") and rel.count("/") == 1 and rel.endswith(SOURCE_ENDINGS):
                        problems.append(f"{rel}: a source file outside server's layer folders")
                    continue
                with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
                    for number, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        target = m.group(1)
                        problems.extend(judge(rel, number, own, target))
    return problems


def judge(rel, number, own, target):
    if target.startswith("tests/"):
        if not rel.startswith("tests/"):
            return [f"{rel}:{number}: includes test code {target}"]
        helper_ok = any(target.startswith(prefix) and (layer == own or layer in ALLOWED[own])
                        for layer, prefix in TEST_HELPERS.items())
        same_folder = target.split("/")[1] == rel.split("/")[1]
        if helper_ok or same_folder:
            return []
        return [f"{rel}:{number}: includes {target}, a test helper of another layer"]
    layer = layer_of(target)
    if layer is None:
        return []
    if layer in LIBRARY_USERS:
        if own in LIBRARY_USERS[layer]:
            return []
        return [f"{rel}:{number}: {own} includes {target} ({layer[:-4]} belongs to "
                f"{', '.join(sorted(LIBRARY_USERS[layer]))})"]
    if layer == own or layer in ALLOWED[own]:
        return []
    return [f"{rel}:{number}: {own} includes {target} from {layer}, which {own} must not know"]


def self_test():
    import tempfile
    files = {
        "scheduler/a.h": '#include "engine/kernels.h"\n#include "base/check.h"\n',
        "server/grpc/b.cc": '#include "server/http/openai_api.h"\n#include "kvserve/v1/x.pb.h"\n',
        "server/http/c.cc": '#include "kvserve/v1/x.pb.h"\n#include "grpcpp/server.h"\n',
        "server/grpc/g.cc": '#include "boost/asio/post.hpp"\n',
        "engine/d.cc": '#include "serving/engine_loop.h"\n#include <vector>\n',
        "tests/scheduler/e_test.cc": '#include "tests/engine/synthetic_model.h"\n',
        "server/frontend/f.cc": '#include "server/models/text_codec.h"\n',
    }
    with tempfile.TemporaryDirectory() as root:
        for rel, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
        problems = check(root)
    expected = ["scheduler/a.h:1:", "server/grpc/b.cc:1:", "server/http/c.cc:1:",
                "server/http/c.cc:2:", "server/grpc/g.cc:1:", "engine/d.cc:1:", "tests/scheduler/e_test.cc:1:"]
    found = sorted(p.split(" ")[0] for p in problems)
    if found != sorted(expected):
        print("self-test: expected violations", sorted(expected), "got", problems)
        return 1
    print(f"self-test: the {len(expected)} planted violations are refused, nothing else")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    problems = check(os.path.abspath(root))
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} include(s) against the layering (docs/ARCHITECTURE.md)")
        return 1
    print("layering: every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
