"""A small GGUF v3 reader and writer (little-endian), NumPy only.

Independent of kvserve's C++ reader: used to write synthetic test models and to load weights
for the float64 reference forward pass.

Metadata values are `Value(type, value, elem_type)`:
  * scalars: `value` is a Python int / float / bool / str;
  * arrays: `type == ARRAY`, `elem_type` is the element type and `value` a list of Python
    scalars, or, for nested arrays (`elem_type == ARRAY`), a list of `Value` arrays.
Reading numeric arrays returns lists too (so values compare equal after a round trip).

Tensors: ggml dimension order, dims[0] is the contiguous one; a NumPy array of shape
(out, in) is stored with dims [in, out]. Tensor types: F32, F16, BF16, Q8_0 (written from float
arrays: `add_tensor`) and the quantized block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K,
Q5_K, Q6_K, IQ4_NL, IQ4_XS (written from raw block bytes: `add_tensor_raw`); all are read back as raw
bytes (`TensorInfo.data`) and decoded to floats (`GGUFFile.tensor`), the block types through
tests/reference/ggml_quants.py (ggml's float32 dequantization).

Self-test: `python3 gguf_py.py --self-test` (writes and reads back every value and tensor type).
"""

import mmap
import os
import struct
import sys
from dataclasses import dataclass, field

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32

# Metadata value types, as numbered in the file format.
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
VALUE_TYPE_NAMES = ["UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32", "BOOL",
                    "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"]
# struct format and NumPy dtype of each fixed-size scalar type.
_SCALAR_FMT = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i",
               FLOAT32: "<f", BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}
_SCALAR_DTYPE = {UINT8: "<u1", INT8: "<i1", UINT16: "<u2", INT16: "<i2", UINT32: "<u4",
                 INT32: "<i4", FLOAT32: "<f4", BOOL: "u1", UINT64: "<u8", INT64: "<i8",
                 FLOAT64: "<f8"}

# ggml tensor types (numbering written in GGUF files).
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30
GGML_Q4_0, GGML_Q4_1, GGML_Q5_0, GGML_Q5_1 = 2, 3, 6, 7
GGML_Q2_K, GGML_Q3_K, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K = 10, 11, 12, 13, 14
GGML_IQ4_NL, GGML_IQ4_XS = 20, 23
GGML_TYPE_NAMES = {GGML_F32: "F32", GGML_F16: "F16", GGML_Q8_0: "Q8_0", GGML_BF16: "BF16",
                   GGML_Q4_0: "Q4_0", GGML_Q4_1: "Q4_1", GGML_Q5_0: "Q5_0", GGML_Q5_1: "Q5_1",
                   GGML_Q2_K: "Q2_K", GGML_Q3_K: "Q3_K", GGML_Q4_K: "Q4_K", GGML_Q5_K: "Q5_K",
                   GGML_Q6_K: "Q6_K", GGML_IQ4_NL: "IQ4_NL", GGML_IQ4_XS: "IQ4_XS"}
GGML_TYPE_BY_NAME = {v: k for k, v in GGML_TYPE_NAMES.items()}
QK8_0 = 32  # elements per Q8_0 block; a block is an f16 scale then 32 int8 values
_Q8_0_BLOCK_BYTES = 2 + QK8_0
# (elements per block, bytes per block) of every type (ggml-common.h); F32/F16/BF16 are 1-element blocks.
BLOCK_LAYOUT = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_BF16: (1, 2), GGML_Q8_0: (32, 34),
                GGML_Q4_0: (32, 18), GGML_Q4_1: (32, 20), GGML_Q5_0: (32, 22), GGML_Q5_1: (32, 24),
                GGML_Q2_K: (256, 84), GGML_Q3_K: (256, 110), GGML_Q4_K: (256, 144),
                GGML_Q5_K: (256, 176), GGML_Q6_K: (256, 210), GGML_IQ4_NL: (32, 18), GGML_IQ4_XS: (256, 136)}
QUANTIZED_TYPES = [t for t, (blk, _) in BLOCK_LAYOUT.items() if blk > 1]


def _ggml_quants():
    """tests/reference/ggml_quants.py: the NumPy (de)quantizer of the block types other than Q8_0."""
    here = os.path.dirname(os.path.abspath(__file__))
    ref = os.path.normpath(os.path.join(here, "..", "tests", "reference"))
    if ref not in sys.path:
        sys.path.insert(0, ref)
    import ggml_quants
    return ggml_quants


class GGUFError(Exception):
    pass


@dataclass
class Value:
    type: int
    value: object
    elem_type: int = None  # only for ARRAY

    def __post_init__(self):
        if self.type == ARRAY and self.elem_type is None:
            raise GGUFError("an ARRAY value needs elem_type")


@dataclass
class TensorInfo:
    name: str
    dims: list  # ggml order
    type: int
    offset: int  # relative to the data section
    data: object = field(default=None, repr=False)  # memoryview of the raw bytes when read

    @property
    def num_elements(self):
        n = 1
        for d in self.dims:
            n *= d
        return n

    @property
    def shape(self):
        """NumPy (row-major) shape: the reverse of the ggml dims."""
        return tuple(reversed(self.dims))


def tensor_nbytes(ggml_type, dims):
    n = 1
    for d in dims:
        n *= d
    if ggml_type not in BLOCK_LAYOUT:
        raise GGUFError(f"unsupported ggml tensor type {ggml_type}")
    blk, nbytes = BLOCK_LAYOUT[ggml_type]
    if blk > 1 and (not dims or dims[0] % blk):
        raise GGUFError(f"{GGML_TYPE_NAMES[ggml_type]} needs rows that are a multiple of {blk}, got dims {dims}")
    return n // blk * nbytes


# ---------------------------------------------------------------------------------------------
# Element conversions (match ggml's reference implementations).

def f32_to_bf16_bits(x):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16); NaNs stay quiet NaNs."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    return np.where(nan, ((u >> 16) | 64).astype(np.uint16), rounded)


def bf16_bits_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def quantize_q8_0(x):
    """Float rows (last axis a multiple of 32) -> Q8_0 bytes, as ggml's quantize_row_q8_0_ref:
    d = max|x| / 127 per block of 32, q = round-half-away(x / d), d stored as f16."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1] % QK8_0:
        raise GGUFError(f"Q8_0 needs rows that are a multiple of {QK8_0}, got row length {x.shape[-1]}")
    blocks = x.reshape(-1, QK8_0)
    amax = np.max(np.abs(blocks), axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    scaled = blocks * inv[:, None]
    q = (np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))).astype(np.int8)
    out = np.empty((blocks.shape[0], _Q8_0_BLOCK_BYTES), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def dequantize_q8_0(raw, n):
    blocks = np.frombuffer(raw, dtype=np.uint8, count=n // QK8_0 * _Q8_0_BLOCK_BYTES).reshape(-1, _Q8_0_BLOCK_BYTES)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
    return (q * d).reshape(-1)


def encode_tensor(array, ggml_type):
    a = np.asarray(array)
    if ggml_type == GGML_F32:
        return a.astype("<f4").tobytes()
    if ggml_type == GGML_F16:
        return a.astype("<f2").tobytes()
    if ggml_type == GGML_BF16:
        return f32_to_bf16_bits(a.astype(np.float32)).astype("<u2").tobytes()
    if ggml_type == GGML_Q8_0:
        return quantize_q8_0(a)
    raise GGUFError(f"unsupported ggml tensor type {ggml_type}")


def decode_tensor(raw, ggml_type, dims, dtype=np.float32):
    """Raw tensor bytes -> NumPy array of NumPy shape reversed(dims), converted to `dtype`."""
    n = 1
    for d in dims:
        n *= d
    if ggml_type == GGML_F32:
        flat = np.frombuffer(raw, dtype="<f4", count=n)
    elif ggml_type == GGML_F16:
        flat = np.frombuffer(raw, dtype="<f2", count=n)
    elif ggml_type == GGML_BF16:
        flat = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2", count=n))
    elif ggml_type == GGML_Q8_0:
        flat = dequantize_q8_0(raw, n)
    elif ggml_type in BLOCK_LAYOUT:
        flat = _ggml_quants().dequantize(ggml_type, bytes(raw[:tensor_nbytes(ggml_type, dims)]))
    else:
        raise GGUFError(f"unsupported ggml tensor type {ggml_type}")
    return flat.astype(dtype).reshape(tuple(reversed(dims)))


# ---------------------------------------------------------------------------------------------
# Reader

class _Cursor:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n, what):
        if self.pos + n > len(self.buf):
            raise GGUFError(f"truncated file while reading {what} at offset {self.pos}")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def scalar(self, vtype, what):
        fmt = _SCALAR_FMT[vtype]
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what):
        n = self.scalar(UINT64, what)
        return bytes(self.take(n, what)).decode("utf-8")

    def value(self, vtype, what):
        if vtype == STRING:
            return Value(STRING, self.string(what))
        if vtype == ARRAY:
            elem = self.scalar(UINT32, what)
            count = self.scalar(UINT64, what)
            return Value(ARRAY, self.array_items(elem, count, what), elem)
        if vtype in _SCALAR_FMT:
            return Value(vtype, self.scalar(vtype, what))
        raise GGUFError(f"unknown value type {vtype} in {what}")

    def array_items(self, elem, count, what):
        if elem in _SCALAR_DTYPE:
            dt = np.dtype(_SCALAR_DTYPE[elem])
            arr = np.frombuffer(self.take(count * dt.itemsize, what), dtype=dt)
            return [bool(v) for v in arr] if elem == BOOL else arr.tolist()
        if elem == STRING:
            return [self.string(what) for _ in range(count)]
        if elem == ARRAY:
            return [self.value(ARRAY, what) for _ in range(count)]
        raise GGUFError(f"unknown array element type {elem} in {what}")


class GGUFFile:
    """A parsed GGUF file. `metadata`: dict key -> Value (file order); `tensors`: dict
    name -> TensorInfo (file order)."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            try:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                buf = memoryview(self._map)
            except ValueError:  # empty file
                buf = memoryview(b"")
        c = _Cursor(buf)
        if bytes(c.take(4, "magic")) != GGUF_MAGIC:
            raise GGUFError(f"{path}: not a GGUF file (bad magic)")
        self.version = c.scalar(UINT32, "version")
        if self.version not in (2, 3):
            raise GGUFError(f"{path}: unsupported GGUF version {self.version}")
        n_tensors = c.scalar(UINT64, "tensor count")
        n_kv = c.scalar(UINT64, "metadata count")
        self.metadata = {}
        for i in range(n_kv):
            key = c.string(f"metadata key #{i}")
            vtype = c.scalar(UINT32, f"type of '{key}'")
            self.metadata[key] = c.value(vtype, f"metadata '{key}'")
        self.alignment = self.get("general.alignment", DEFAULT_ALIGNMENT)
        self.tensors = {}
        for i in range(n_tensors):
            name = c.string(f"tensor name #{i}")
            n_dims = c.scalar(UINT32, f"tensor '{name}'")
            dims = [c.scalar(UINT64, f"tensor '{name}'") for _ in range(n_dims)]
            ttype = c.scalar(UINT32, f"tensor '{name}'")
            offset = c.scalar(UINT64, f"tensor '{name}'")
            self.tensors[name] = TensorInfo(name, dims, ttype, offset)
        self.data_offset = -(-c.pos // self.alignment) * self.alignment
        for t in self.tensors.values():
            start = self.data_offset + t.offset
            end = start + tensor_nbytes(t.type, t.dims)
            if end > len(buf):
                raise GGUFError(f"{path}: data of tensor '{t.name}' runs past the end of the file")
            t.data = buf[start:end]

    def get(self, key, default=None):
        v = self.metadata.get(key)
        return default if v is None else v.value

    def tensor(self, name, dtype=np.float32):
        """Tensor `name` as a NumPy array (dequantized), shape reversed(dims)."""
        t = self.tensors.get(name)
        if t is None:
            raise GGUFError(f"{self.path}: missing tensor '{name}'")
        return decode_tensor(t.data, t.type, t.dims, dtype)


def read_gguf(path):
    return GGUFFile(path)


# ---------------------------------------------------------------------------------------------
# Writer

def _encode_value(v, out):
    if v.type == STRING:
        b = v.value.encode("utf-8")
        out += struct.pack("<Q", len(b)) + b
    elif v.type == ARRAY:
        out += struct.pack("<IQ", v.elem_type, len(v.value))
        if v.elem_type in _SCALAR_DTYPE:
            out += np.asarray(v.value, dtype=_SCALAR_DTYPE[v.elem_type]).tobytes()
        elif v.elem_type == STRING:
            for s in v.value:
                b = s.encode("utf-8")
                out += struct.pack("<Q", len(b)) + b
        elif v.elem_type == ARRAY:
            for item in v.value:
                if not isinstance(item, Value) or item.type != ARRAY:
                    raise GGUFError("elements of a nested array must be ARRAY Values")
                _encode_value(item, out)
        else:
            raise GGUFError(f"unknown array element type {v.elem_type}")
    elif v.type in _SCALAR_FMT:
        out += struct.pack(_SCALAR_FMT[v.type], v.value)
    else:
        raise GGUFError(f"unknown value type {v.type}")


class GGUFWriter:
    def __init__(self, alignment=DEFAULT_ALIGNMENT):
        self.metadata = {}
        self.tensors = []  # (name, dims, ggml_type, bytes)
        self.alignment = alignment
        if alignment != DEFAULT_ALIGNMENT:
            self.add("general.alignment", UINT32, alignment)

    def add(self, key, vtype, value, elem_type=None):
        self.metadata[key] = Value(vtype, value, elem_type)

    def add_value(self, key, value):
        self.metadata[key] = value

    def add_tensor(self, name, array, ggml_type):
        a = np.asarray(array)
        dims = list(reversed(a.shape))
        if ggml_type == GGML_Q8_0 and dims[0] % QK8_0:
            raise GGUFError(f"tensor '{name}': Q8_0 needs rows that are a multiple of {QK8_0}, "
                            f"got row length {dims[0]}")
        self.tensors.append((name, dims, ggml_type, encode_tensor(a, ggml_type)))

    def add_tensor_raw(self, name, dims, ggml_type, raw):
        """A tensor of any supported type from its raw bytes (ggml dims order: dims[0] is the row
        length); the size must be that of the type and dims."""
        dims = [int(d) for d in dims]
        want = tensor_nbytes(ggml_type, dims)
        raw = bytes(raw)
        if len(raw) != want:
            raise GGUFError(f"tensor '{name}': {len(raw)} bytes given, {GGML_TYPE_NAMES.get(ggml_type, ggml_type)} "
                            f"with dims {dims} takes {want}")
        self.tensors.append((name, dims, ggml_type, raw))

    def write(self, path):
        head = bytearray(GGUF_MAGIC)
        head += struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.metadata))
        for key, v in self.metadata.items():
            kb = key.encode("utf-8")
            head += struct.pack("<Q", len(kb)) + kb + struct.pack("<I", v.type)
            _encode_value(v, head)
        offset = 0
        offsets = []
        for name, dims, ttype, data in self.tensors:
            nb = name.encode("utf-8")
            head += struct.pack("<Q", len(nb)) + nb + struct.pack("<I", len(dims))
            head += struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", ttype, offset)
            offsets.append(offset)
            offset += -(-len(data) // self.alignment) * self.alignment
        with open(path, "wb") as f:
            f.write(head)
            f.write(b"\0" * (-len(head) % self.alignment))
            for (_, _, _, data), off in zip(self.tensors, offsets):
                f.write(data)
                f.write(b"\0" * (-len(data) % self.alignment))


def copy_with_metadata(src, dst, updates):
    """Writes `dst`: `src` with the metadata values in `updates` (key -> Value) set, existing keys
    keeping their place and new ones appended, and every tensor copied byte for byte. Written
    under a temporary name and renamed, so `dst` may be `src`."""
    f = read_gguf(src)
    w = GGUFWriter()
    for key, value in f.metadata.items():
        if key != "general.alignment":
            w.add_value(key, value)
    for key, value in updates.items():
        w.add_value(key, value)
    for name, t in f.tensors.items():
        w.add_tensor_raw(name, t.dims, t.type, bytes(t.data))
    tmp = f"{dst}.{os.getpid()}.tmp"
    w.write(tmp)
    os.replace(tmp, dst)


# ---------------------------------------------------------------------------------------------
# Self-test: every value type (incl. nested arrays), every tensor type, a non-default alignment.

def self_test(path):
    rng = np.random.default_rng(1)
    for alignment in (DEFAULT_ALIGNMENT, 64):
        w = GGUFWriter(alignment)
        w.add("u8", UINT8, 255)
        w.add("i8", INT8, -128)
        w.add("u16", UINT16, 65535)
        w.add("i16", INT16, -32768)
        w.add("u32", UINT32, 4294967295)
        w.add("i32", INT32, -2147483648)
        w.add("f32", FLOAT32, 1.5)
        w.add("bool_t", BOOL, True)
        w.add("bool_f", BOOL, False)
        w.add("str", STRING, "héllo ▁wörld")
        w.add("u64", UINT64, 2**64 - 1)
        w.add("i64", INT64, -2**63)
        w.add("f64", FLOAT64, -0.1)
        for t in _SCALAR_DTYPE:
            vals = [True, False, True] if t == BOOL else [0, 1, 2, 100]
            w.add(f"arr.{VALUE_TYPE_NAMES[t]}", ARRAY, vals, t)
        w.add("arr.empty", ARRAY, [], INT32)
        w.add("arr.str", ARRAY, ["a", "", "<0x0A>", "日本"], STRING)
        w.add("arr.nested", ARRAY,
              [Value(ARRAY, [1, 2], INT32), Value(ARRAY, ["x"], STRING),
               Value(ARRAY, [Value(ARRAY, [0.5], FLOAT64)], ARRAY)], ARRAY)
        tensors = {
            "t.f32": (rng.normal(size=(3, 5)).astype(np.float32), GGML_F32),
            "t.f16": (rng.normal(size=(2, 7)), GGML_F16),
            "t.bf16": (rng.normal(size=(4, 3)), GGML_BF16),
            "t.q8": (rng.normal(size=(3, 64)), GGML_Q8_0),
            "t.q8zero": (np.zeros((1, 32)), GGML_Q8_0),
            "t.1d": (np.arange(33, dtype=np.float32), GGML_F32),
        }
        for name, (a, t) in tensors.items():
            w.add_tensor(name, a, t)
        w.write(path)

        r = read_gguf(path)
        assert r.version == 3
        assert r.alignment == alignment, (r.alignment, alignment)
        for key, v in w.metadata.items():
            got = r.metadata[key]
            if v.type == FLOAT32:
                assert got.type == FLOAT32 and got.value == np.float32(v.value), key
            else:
                assert got == v, (key, got, v)
        assert list(r.metadata) == list(w.metadata)
        assert r.data_offset % alignment == 0
        for name, (a, t) in tensors.items():
            info = r.tensors[name]
            assert info.type == t and info.dims == list(reversed(a.shape)), name
            assert info.offset % alignment == 0, name
            got = r.tensor(name, np.float64)
            assert got.shape == a.shape, name
            a64 = np.asarray(a, dtype=np.float64)
            if t == GGML_F32:
                assert np.array_equal(got, a64), name
            elif t == GGML_F16:
                assert np.array_equal(got, a64.astype(np.float16).astype(np.float64)), name
            elif t == GGML_BF16:
                assert np.all(np.abs(got - a64) <= np.abs(a64) * 2.0**-8), name
            else:  # Q8_0: error at most half a quantization step (scale rounded to f16)
                blocks = a64.reshape(-1, 32)
                step = np.abs(blocks).max(axis=1, keepdims=True) / 127
                err = np.abs(got.reshape(-1, 32) - blocks)
                assert np.all(err <= step * 0.5 + np.abs(blocks) * 1e-3 + 1e-12), name
        # Every quantized block type from raw blocks (random valid blocks incl. edge cases): raw
        # bytes, dims and offsets survive; decoding equals ggml_quants' dequantization.
        gq = _ggml_quants()
        w = GGUFWriter(alignment)
        raws = {}
        for t in QUANTIZED_TYPES:
            blk, nb = BLOCK_LAYOUT[t]
            dims = [2 * blk, 3]
            raw = gq.random_blocks(t, 6, rng, 0.5, 0.3).tobytes()
            assert len(raw) == tensor_nbytes(t, dims) == 6 * nb
            raws[t] = (dims, raw)
            w.add_tensor_raw(f"q.{GGML_TYPE_NAMES[t]}", dims, t, raw)
        w.write(path)
        r = read_gguf(path)
        for t, (dims, raw) in raws.items():
            info = r.tensors[f"q.{GGML_TYPE_NAMES[t]}"]
            assert info.type == t and info.dims == dims and bytes(info.data) == raw, GGML_TYPE_NAMES[t]
            assert info.offset % alignment == 0
            got = r.tensor(info.name)
            assert got.shape == (3, 2 * BLOCK_LAYOUT[t][0])
            assert np.array_equal(got.reshape(-1), gq.dequantize(t, raw)), GGML_TYPE_NAMES[t]
        for t in QUANTIZED_TYPES:
            blk = BLOCK_LAYOUT[t][0]
            for bad in ([blk + 16, 2], [blk, 2, 1]):
                try:
                    w.add_tensor_raw("bad", bad, t, b"\0" * 7)
                    raise AssertionError(f"{GGML_TYPE_NAMES[t]} with dims {bad} and 7 bytes must be refused")
                except GGUFError:
                    pass
    # Hand-checked encodings.
    assert f32_to_bf16_bits(np.array([1.0, 1.00390625, 1.01171875], np.float32)).tolist() == \
        [0x3F80, 0x3F80, 0x3F82]  # ties to even
    raw = quantize_q8_0(np.array([127.0, -63.5] + [0.0] * 30))
    assert raw[:2] == np.float16(1.0).tobytes() and raw[2] == 127 and raw[3] == 256 - 64  # -63.5 -> -64
    try:
        GGUFWriter().add_tensor("bad", np.zeros((2, 20)), GGML_Q8_0)
        raise AssertionError("Q8_0 with rows of 20 must be refused")
    except GGUFError:
        pass
    # Truncation is an error, not a crash.
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:100])
    try:
        read_gguf(path)
        raise AssertionError("truncated file must be refused")
    except GGUFError:
        pass
    print("gguf_py self-test OK")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--self-test":
        import os
        import tempfile
        out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(tempfile.mkdtemp(), "selftest.gguf")
        self_test(out)
    elif len(sys.argv) == 2:
        g = read_gguf(sys.argv[1])
        for k, v in g.metadata.items():
            s = repr(v.value)
            print(f"{k} [{VALUE_TYPE_NAMES[v.type]}] = {s[:100]}{'...' if len(s) > 100 else ''}")
        for t in g.tensors.values():
            print(f"{t.name} {GGML_TYPE_NAMES.get(t.type, t.type)} dims={t.dims} offset={t.offset}")
    else:
        print("usage: gguf_py.py --self-test [FILE] | gguf_py.py MODEL.gguf (dump)", file=sys.stderr)
        sys.exit(2)
