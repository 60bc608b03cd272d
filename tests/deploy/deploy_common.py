"""Helpers shared by the deployment tests: kvserve processes with their HTTP port, Prometheus
text parsing, free ports, and the repository paths.

Environment (set by ctest, see CMakeLists.txt): KVSERVE_BIN, KVSERVE_SOURCE (the repository),
PYTHONPATH with the generated stubs and tests/server (server_harness).
"""
import os
import re
import socket
import subprocess

from server_harness import KVSERVE_BIN, Server

SOURCE = os.environ.get("KVSERVE_SOURCE",
                        os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
DEPLOY = os.path.join(SOURCE, "deploy")


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kvserve_flags():
    """Names (underscore spelling) of every flag `kvserve serve` accepts."""
    out = subprocess.run([KVSERVE_BIN, "serve", "--helpfull"], capture_output=True, text=True,
                         timeout=30)
    return set(re.findall(r"^\s+--([a-z0-9_]+)", out.stdout + out.stderr, re.M))


class HttpServer(Server):
    """`kvserve serve` (the harness: free gRPC and HTTP ports) with parsed /metrics."""

    def get(self, path, timeout=5):
        """(status, body) of GET http://127.0.0.1:http_port/path."""
        return self.http_get(path, timeout=timeout)

    def metrics(self):
        status, body = self.get("/metrics")
        assert status == 200, status
        return parse_metrics(body)


class Metrics:
    """A parsed Prometheus text exposition: family names with types, and samples."""

    def __init__(self):
        self.types = {}     # family name -> counter/gauge/histogram/...
        self.samples = []   # (name, {label: value}, float)

    def value(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels`."""
        return sum(v for n, l, v in self.samples
                   if n == name and all(l.get(k) == w for k, w in labels.items()))

    def has(self, name):
        return any(n == name for n, _, _ in self.samples)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    m = Metrics()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            m.types[name] = kind.strip()
        elif line and not line.startswith("#"):
            s = _SAMPLE.match(line)
            if s:
                m.samples.append((s[1], dict(_LABEL.findall(s[2] or "")), float(s[3])))
    return m


def exported_metric_names(metrics):
    """Every name a PromQL query can select: the families, and for histograms and summaries
    their _bucket/_sum/_count series."""
    names = set()
    for name, kind in metrics.types.items():
        names.add(name)
        if kind in ("histogram", "summary"):
            names.update({name + "_bucket", name + "_sum", name + "_count"})
    names.update(n for n, _, _ in metrics.samples)
    return names


# A kvserve metric name in a PromQL expression, not part of a recording rule's name
# (level:metric:operations) or of a longer identifier.
_PROMQL_METRIC = re.compile(r"(?<![\w:])(kvserve_[a-z0-9_]+)(?![\w:])")


def promql_metric_names(expr):
    return set(_PROMQL_METRIC.findall(expr))
