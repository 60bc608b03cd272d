"""llama.cpp's own ggml, called through ctypes: the shared libraries that node-llama-cpp ships
(the llama.cpp oracle, ~/.cache/kvserve/oracle). Used to check ggml_quants.py against the very
code llama.cpp runs: to_float (dequantize_row_*), the CPU backend's from_float (the x86 SIMD
quantize_row_q8_0 / q8_1, quantize_row_q8_K) and vec_dot (the integer dot products), from the CPU
variant that ggml itself would load on this machine (the one with the best ggml_backend_score).

Nothing here is compiled or copied from llama.cpp; it only calls exported functions of the
installed package.
"""

import ctypes
import glob
import os

import numpy as np


class LibggmlUnavailable(Exception):
    pass


def _bins_dir(oracle_dir=None):
    d = oracle_dir or os.environ.get("KVSERVE_ORACLE_DIR") or os.path.expanduser("~/.cache/kvserve/oracle")
    hits = glob.glob(os.path.join(d, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "*", "libggml-base.so"))
    if not hits:
        raise LibggmlUnavailable(f"no node_modules/@node-llama-cpp/linux-x64/bins/*/libggml-base.so under {d} "
                                 "(run scripts/install-oracle.sh, or set KVSERVE_ORACLE_DIR)")
    return os.path.dirname(hits[0])


class _Traits(ctypes.Structure):
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p),
                ("from_float_ref", ctypes.c_void_p)]


class _CpuTraits(ctypes.Structure):
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p),
                ("vec_dot_type", ctypes.c_int), ("nrows", ctypes.c_int64)]


_CONVERT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
_VEC_DOT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
                            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)

Q8_TYPE_IDS = {"q8_0": 8, "q8_1": 9, "q8_K": 15}


class Libggml:
    def __init__(self, oracle_dir=None):
        bins = _bins_dir(oracle_dir)
        self.base = ctypes.CDLL(os.path.join(bins, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
        best, best_score = None, 0
        for path in sorted(glob.glob(os.path.join(bins, "libggml-cpu-*.so"))):
            try:
                lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
                lib.ggml_backend_score.restype = ctypes.c_int
                score = lib.ggml_backend_score()
            except OSError:
                continue
            if score > best_score:
                best, best_score = (path, lib), score
        if best is None:
            raise LibggmlUnavailable(f"no libggml-cpu-*.so in {bins} runs on this CPU")
        self.cpu_variant = os.path.basename(best[0])[len("libggml-cpu-"):-3]
        self.cpu = best[1]
        self.cpu.ggml_cpu_init.restype = None
        self.cpu.ggml_cpu_init()
        self.base.ggml_get_type_traits.restype = ctypes.POINTER(_Traits)
        self.cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(_CpuTraits)

    def to_float(self, type_id, raw, n):
        fn = _CONVERT(self.base.ggml_get_type_traits(type_id).contents.to_float)
        src = np.frombuffer(bytes(raw), np.uint8).copy()
        out = np.empty(n, np.float32)
        fn(src.ctypes.data, out.ctypes.data, n)
        return out

    def from_float(self, kind, x):
        """x float32 (row length a multiple of the block) -> bytes of the CPU backend's from_float
        for q8_0 / q8_1 / q8_K."""
        tid = Q8_TYPE_IDS[kind]
        tr = self.base.ggml_get_type_traits(tid).contents
        fn = _CONVERT(self.cpu.ggml_get_type_traits_cpu(tid).contents.from_float)
        x = np.ascontiguousarray(x, np.float32).reshape(-1)
        nbytes = x.size // tr.blck_size * tr.type_size
        out = np.zeros(nbytes + 64, np.uint8)
        fn(x.ctypes.data, out.ctypes.data, x.size)
        return out[:nbytes].copy()

    def vec_dot_type(self, type_id):
        return self.cpu.ggml_get_type_traits_cpu(type_id).contents.vec_dot_type

    def vec_dot(self, type_id, wrow, arow, k):
        """One dot product of a weight row (raw blocks) with an activation row (raw blocks of the
        type's vec_dot_type), by the CPU backend's vec_dot."""
        fn = _VEC_DOT(self.cpu.ggml_get_type_traits_cpu(type_id).contents.vec_dot)
        w = np.frombuffer(bytes(wrow), np.uint8).copy()
        a = np.frombuffer(bytes(arow), np.uint8).copy()
        s = ctypes.c_float(0)
        fn(k, ctypes.byref(s), 0, w.ctypes.data, 0, a.ctypes.data, 0, 1)
        return float(s.value)
