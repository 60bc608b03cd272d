#include "engine/gguf.h"

#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace kvserve::engine {
namespace {

// Debian's Abseil is built with its own absl::string_view (not an alias of std::string_view),
// so std::string_view arguments are converted explicitly for StrCat and hash lookups.
inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxDims = 4;
// Nested arrays are parsed recursively; real files nest at most once or twice.
constexpr int kMaxArrayDepth = 8;
constexpr std::string_view kAlignmentKey = "general.alignment";

bool IsKnownValueType(uint32_t raw) {
  return raw <= static_cast<uint32_t>(GgufValueType::kFloat64);
}

// Bytes of a scalar value type; 0 for string and array.
uint64_t ScalarSize(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return 0;
  }
  return 0;
}

// The fewest bytes one encoded value of `type` can take (used to reject impossible counts
// before allocating anything).
uint64_t MinEncodedSize(GgufValueType type) {
  if (type == GgufValueType::kString) return 8;  // length prefix
  if (type == GgufValueType::kArray) return 12;  // element type + count
  return ScalarSize(type);
}

bool IsIntegerType(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
      return true;
    default:
      return false;
  }
}

bool IsFloatType(GgufValueType type) {
  return type == GgufValueType::kFloat32 || type == GgufValueType::kFloat64;
}

// "a string", "an int8", "an array of uint32".
std::string DescribeType(const GgufValue& value) {
  absl::string_view name = Sv(GgufValueTypeName(value.type));
  std::string out = absl::StrCat(name.front() == 'i' || name.front() == 'a' ? "an " : "a ", name);
  if (value.type == GgufValueType::kArray) {
    absl::StrAppend(&out, " of ", Sv(GgufValueTypeName(value.array_type)));
  }
  return out;
}

// Bounds-checked little-endian reader over the mapping. Every read names what it reads so a
// truncation error says where the file ends.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  // `what` + `suffix` name the field; kept apart so the hot path builds no strings.
  template <typename T>
  absl::Status Read(T* out, absl::string_view what, absl::string_view suffix = "") {
    if (remaining() < sizeof(T)) return Truncated(what, suffix);
    std::memcpy(out, data_ + pos_, sizeof(T));  // host is little-endian x86-64, as is GGUF
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out, absl::string_view what) {
    uint64_t length = 0;
    if (absl::Status s = Read(&length, what, " length"); !s.ok()) return s;
    if (length > remaining()) {
      return absl::DataLossError(absl::StrCat("truncated GGUF file: ", what, " of ", length,
                                              " bytes at offset ", pos_, " ends past end of file (",
                                              size_, " bytes)"));
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(length));
    pos_ += static_cast<size_t>(length);
    return absl::OkStatus();
  }

  absl::Status Truncated(absl::string_view what, absl::string_view suffix = "") const {
    return absl::DataLossError(absl::StrCat("truncated GGUF file: ", what, suffix, " at offset ",
                                            pos_, " ends past end of file (", size_, " bytes)"));
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

template <typename Wire, typename Stored>
absl::Status ReadScalar(Cursor& cursor, absl::string_view what, GgufValue* out) {
  Wire wire;
  if (absl::Status s = cursor.Read(&wire, what); !s.ok()) return s;
  out->value = static_cast<Stored>(wire);
  return absl::OkStatus();
}

// Reads one value of `type` (already read from the file) into `out`. `what` names the value for
// error messages, e.g. "metadata key 2 ('general.name') value".
absl::Status ReadValue(Cursor& cursor, GgufValueType type, int depth, const std::string& what,
                       GgufValue* out) {
  out->type = type;
  switch (type) {
    case GgufValueType::kUint8:
      return ReadScalar<uint8_t, uint64_t>(cursor, what, out);
    case GgufValueType::kInt8:
      return ReadScalar<int8_t, int64_t>(cursor, what, out);
    case GgufValueType::kUint16:
      return ReadScalar<uint16_t, uint64_t>(cursor, what, out);
    case GgufValueType::kInt16:
      return ReadScalar<int16_t, int64_t>(cursor, what, out);
    case GgufValueType::kUint32:
      return ReadScalar<uint32_t, uint64_t>(cursor, what, out);
    case GgufValueType::kInt32:
      return ReadScalar<int32_t, int64_t>(cursor, what, out);
    case GgufValueType::kUint64:
      return ReadScalar<uint64_t, uint64_t>(cursor, what, out);
    case GgufValueType::kInt64:
      return ReadScalar<int64_t, int64_t>(cursor, what, out);
    case GgufValueType::kFloat32:
      return ReadScalar<float, double>(cursor, what, out);
    case GgufValueType::kFloat64:
      return ReadScalar<double, double>(cursor, what, out);
    case GgufValueType::kBool: {
      uint8_t byte;
      if (absl::Status s = cursor.Read(&byte, what); !s.ok()) return s;
      if (byte > 1) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " is a bool with invalid byte ", static_cast<int>(byte)));
      }
      out->value = byte == 1;
      return absl::OkStatus();
    }
    case GgufValueType::kString: {
      std::string text;
      if (absl::Status s = cursor.ReadString(&text, what); !s.ok()) return s;
      out->value = std::move(text);
      return absl::OkStatus();
    }
    case GgufValueType::kArray: {
      if (depth >= kMaxArrayDepth) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " nests arrays deeper than ", kMaxArrayDepth, " levels"));
      }
      uint32_t raw_elem_type;
      uint64_t count;
      if (absl::Status s = cursor.Read(&raw_elem_type, what, " array element type"); !s.ok()) {
        return s;
      }
      if (!IsKnownValueType(raw_elem_type)) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " is an array of unknown value type ", raw_elem_type));
      }
      const auto elem_type = static_cast<GgufValueType>(raw_elem_type);
      out->array_type = elem_type;
      if (absl::Status s = cursor.Read(&count, what, " array length"); !s.ok()) {
        return s;
      }
      // Reject before allocating: each element takes at least MinEncodedSize bytes.
      const uint64_t min_size = MinEncodedSize(elem_type);
      if (count > cursor.remaining() / min_size) {
        return absl::DataLossError(
            absl::StrCat("truncated GGUF file: ", what, " array of ", count, " ",
                         Sv(GgufValueTypeName(elem_type)), " elements at offset ", cursor.pos(),
                         " cannot fit in the remaining ", cursor.remaining(), " bytes"));
      }
      std::vector<GgufValue> elements(static_cast<size_t>(count));
      for (uint64_t i = 0; i < count; ++i) {
        // Name the element only on failure: arrays hold up to millions of elements.
        if (absl::Status s = ReadValue(cursor, elem_type, depth + 1, what, &elements[i]); !s.ok()) {
          return absl::Status(s.code(), absl::StrCat(s.message(), " (array element ", i, ")"));
        }
      }
      out->value = std::move(elements);
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(what, " has unknown value type"));
}

bool MulOverflows(int64_t a, int64_t b, int64_t* out) { return __builtin_mul_overflow(a, b, out); }

std::string FormatDims(const std::vector<int64_t>& dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

// The header: magic, version (2 or 3), tensor and metadata counts.
absl::Status ReadHeader(Cursor& cursor, const uint8_t* map, uint32_t* version,
                        uint64_t* tensor_count, uint64_t* kv_count) {
  uint32_t magic;
  if (absl::Status s = cursor.Read(&magic, "magic"); !s.ok()) return s;
  if (std::memcmp(map, "GGUF", 4) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("not a GGUF file: magic is %02x %02x %02x %02x, expected \"GGUF\"", map[0],
                        map[1], map[2], map[3]));
  }
  if (absl::Status s = cursor.Read(version, "version"); !s.ok()) return s;
  if (*version != 2 && *version != 3) {
    std::string hint;
    if (*version == 0x02000000u || *version == 0x03000000u) hint = " (a big-endian file?)";
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported GGUF version ", *version, hint, "; supported: 2, 3"));
  }
  if (absl::Status s = cursor.Read(tensor_count, "tensor count"); !s.ok()) return s;
  if (absl::Status s = cursor.Read(kv_count, "metadata key/value count"); !s.ok()) return s;
  return absl::OkStatus();
}

// `kv_count` metadata key/values, keys unique, into `metadata` and its `index`.
absl::Status ReadMetadata(Cursor& cursor, uint64_t kv_count,
                          std::vector<std::pair<std::string, GgufValue>>* metadata,
                          absl::flat_hash_map<std::string, size_t>* index) {
  metadata->reserve(static_cast<size_t>(kv_count));
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key;
    if (absl::Status s = cursor.ReadString(&key, absl::StrCat("metadata key ", i, " name"));
        !s.ok()) {
      return s;
    }
    const std::string what = absl::StrCat("metadata key ", i, " ('", key, "')");
    uint32_t raw_type;
    if (absl::Status s = cursor.Read(&raw_type, absl::StrCat(what, " value type")); !s.ok()) {
      return s;
    }
    if (!IsKnownValueType(raw_type)) {
      return absl::InvalidArgumentError(absl::StrCat(what, " has unknown value type ", raw_type));
    }
    GgufValue value;
    if (absl::Status s = ReadValue(cursor, static_cast<GgufValueType>(raw_type), 0,
                                   absl::StrCat(what, " value"), &value);
        !s.ok()) {
      return s;
    }
    if (!index->try_emplace(key, metadata->size()).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate metadata key '", key, "'"));
    }
    metadata->emplace_back(std::move(key), std::move(value));
  }

  return absl::OkStatus();
}

// general.alignment when present (a uint32 power of two), else the default.
absl::StatusOr<uint64_t> AlignmentOf(const GgufValue* alignment) {
  if (alignment == nullptr) return kDefaultAlignment;
  if (alignment->type != GgufValueType::kUint32) {
    return absl::InvalidArgumentError(absl::StrCat("metadata key '", Sv(kAlignmentKey), "' is ",
                                                   DescribeType(*alignment),
                                                   ", expected a uint32"));
  }
  const uint64_t value = std::get<uint64_t>(alignment->value);
  if (value == 0 || (value & (value - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metadata key '", Sv(kAlignmentKey), "' must be a nonzero power of two, got ", value));
  }
  return value;
}

// Tensor info `i`: name, shape, type, byte size and data offset (a multiple of `alignment`).
absl::Status ReadTensorInfo(Cursor& cursor, uint64_t i, uint64_t alignment,
                            GgufTensorInfo* tensor) {
  if (absl::Status s = cursor.ReadString(&tensor->name, absl::StrCat("tensor info ", i, " name"));
      !s.ok()) {
    return s;
  }
  const std::string what = absl::StrCat("tensor info ", i, " ('", tensor->name, "')");
  const std::string named = absl::StrCat("tensor '", tensor->name, "'");
  uint32_t num_dims;
  if (absl::Status s = cursor.Read(&num_dims, absl::StrCat(what, " n_dims")); !s.ok()) return s;
  if (num_dims == 0 || num_dims > kMaxDims) {
    return absl::InvalidArgumentError(
        absl::StrCat(named, " has ", num_dims, " dimensions, expected 1 to ", kMaxDims));
  }
  if (cursor.remaining() < uint64_t{num_dims} * 8) {
    return cursor.Truncated(absl::StrCat(what, " dims"));
  }
  tensor->dims.resize(num_dims);
  int64_t num_elements = 1;
  for (uint32_t d = 0; d < num_dims; ++d) {
    if (absl::Status s = cursor.Read(&tensor->dims[d], absl::StrCat(what, " dims")); !s.ok()) {
      return s;
    }
    if (tensor->dims[d] <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(named, " has dimension ", d, " of size ",
                                                     tensor->dims[d], ", expected > 0"));
    }
    if (MulOverflows(num_elements, tensor->dims[d], &num_elements)) {
      return absl::InvalidArgumentError(absl::StrCat(named, " shape ", FormatDims(tensor->dims),
                                                     " has too many elements (overflow)"));
    }
  }
  tensor->num_elements = num_elements;
  uint32_t raw_type;
  if (absl::Status s = cursor.Read(&raw_type, absl::StrCat(what, " type")); !s.ok()) return s;
  absl::StatusOr<GgmlTypeTraits> traits = GetGgmlTypeTraits(raw_type);
  if (!traits.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(named, " has unknown ggml tensor type ", raw_type));
  }
  tensor->type = static_cast<GgmlType>(raw_type);
  if (tensor->dims[0] % traits->block_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(named, " row of ", tensor->dims[0], " elements is not a multiple of the ",
                     Sv(traits->name), " block size ", traits->block_size));
  }
  absl::StatusOr<int64_t> row_bytes = GgmlRowBytes(tensor->type, tensor->dims[0]);
  if (!row_bytes.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(named, ": ", row_bytes.status().message()));
  }
  const int64_t rows = num_elements / tensor->dims[0];
  if (MulOverflows(*row_bytes, rows, &tensor->num_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(named, " shape ", FormatDims(tensor->dims), " overflows its byte size"));
  }
  if (absl::Status s = cursor.Read(&tensor->offset, absl::StrCat(what, " offset")); !s.ok()) {
    return s;
  }
  if (tensor->offset % alignment != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        named, " data offset ", tensor->offset, " is not a multiple of the alignment ", alignment));
  }
  return absl::OkStatus();
}

// Points every tensor at its data, which must lie inside the file: the data section starts at
// the first multiple of `alignment` after the tensor infos, which end at `infos_end`.
absl::Status LocateTensorData(const uint8_t* map, size_t map_size, uint64_t infos_end,
                              uint64_t alignment, std::vector<GgufTensorInfo>& tensors) {
  // The data section starts at the next multiple of the alignment. A file without tensors may
  // end right after the directory.
  const uint64_t padding = (alignment - infos_end % alignment) % alignment;
  const uint64_t data_start = infos_end + padding;  // no overflow: both are < 2^63
  for (GgufTensorInfo& tensor : tensors) {
    const uint64_t available = data_start <= map_size ? map_size - data_start : 0;
    const uint64_t bytes = static_cast<uint64_t>(tensor.num_bytes);
    if (data_start > map_size || tensor.offset > available || bytes > available - tensor.offset) {
      return absl::DataLossError(absl::StrCat("truncated GGUF file: tensor '", tensor.name,
                                              "' data (", bytes, " bytes at offset ", tensor.offset,
                                              " of the data section starting at ", data_start,
                                              ") ends past end of file (", map_size, " bytes)"));
    }
    tensor.data = map + data_start + tensor.offset;
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view GgufValueTypeName(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
      return "uint8";
    case GgufValueType::kInt8:
      return "int8";
    case GgufValueType::kUint16:
      return "uint16";
    case GgufValueType::kInt16:
      return "int16";
    case GgufValueType::kUint32:
      return "uint32";
    case GgufValueType::kInt32:
      return "int32";
    case GgufValueType::kFloat32:
      return "float32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "string";
    case GgufValueType::kArray:
      return "array";
    case GgufValueType::kUint64:
      return "uint64";
    case GgufValueType::kInt64:
      return "int64";
    case GgufValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

bool GgufValue::is_integer() const { return IsIntegerType(type); }
bool GgufValue::is_float() const { return IsFloatType(type); }

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  absl::StatusOr<std::unique_ptr<MappedFile>> mapping = MappedFile::Open(path, "GGUF file");
  if (!mapping.ok()) return mapping.status();
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->path_ = path;
  file->mapping_ = std::move(*mapping);
  file->map_ = file->mapping_->data();
  file->map_size_ = file->mapping_->size();
  if (absl::Status s = file->Parse(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  }
  return file;
}

GgufFile::~GgufFile() = default;

absl::Status GgufFile::Parse() {
  Cursor cursor(map_, map_size_);
  uint64_t tensor_count, kv_count;
  if (absl::Status s = ReadHeader(cursor, map_, &version_, &tensor_count, &kv_count); !s.ok()) {
    return s;
  }
  // Each key/value needs at least a length, a type and a 1-byte value; each tensor info at least
  // a name length, n_dims, one dim, a type and an offset. Bounds reservations below.
  constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
  constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;
  if (kv_count > cursor.remaining() / kMinKvBytes) {
    return absl::DataLossError(absl::StrCat("truncated GGUF file: ", kv_count,
                                            " metadata key/values cannot fit in the remaining ",
                                            cursor.remaining(), " bytes"));
  }
  if (absl::Status s = ReadMetadata(cursor, kv_count, &metadata_, &metadata_index_); !s.ok()) {
    return s;
  }
  absl::StatusOr<uint64_t> alignment = AlignmentOf(FindMetadata(kAlignmentKey));
  if (!alignment.ok()) return alignment.status();
  alignment_ = *alignment;

  if (tensor_count > cursor.remaining() / kMinTensorInfoBytes) {
    return absl::DataLossError(absl::StrCat("truncated GGUF file: ", tensor_count,
                                            " tensor infos cannot fit in the remaining ",
                                            cursor.remaining(), " bytes"));
  }
  tensors_.reserve(static_cast<size_t>(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo tensor;
    if (absl::Status s = ReadTensorInfo(cursor, i, alignment_, &tensor); !s.ok()) return s;
    if (tensor_index_.contains(tensor.name)) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor name '", tensor.name, "'"));
    }
    tensor_index_.emplace(tensor.name, tensors_.size());
    tensors_.push_back(std::move(tensor));
  }

  return LocateTensorData(map_, map_size_, cursor.pos(), alignment_, tensors_);
}

const GgufValue* GgufFile::FindMetadata(std::string_view key) const {
  auto it = metadata_index_.find(Sv(key));
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

namespace {

absl::Status MissingKey(absl::string_view key) {
  return absl::NotFoundError(absl::StrCat("missing metadata key '", key, "'"));
}

absl::Status WrongType(absl::string_view key, const GgufValue& value, absl::string_view expected) {
  return absl::InvalidArgumentError(
      absl::StrCat("metadata key '", key, "' is ", DescribeType(value), ", expected ", expected));
}

// An integer value as int64; error when an unsigned value exceeds int64.
absl::StatusOr<int64_t> IntegerAsInt64(absl::string_view key, const GgufValue& value) {
  if (const auto* u = std::get_if<uint64_t>(&value.value)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::OutOfRangeError(
          absl::StrCat("metadata key '", key, "' value ", *u, " does not fit in int64"));
    }
    return static_cast<int64_t>(*u);
  }
  return std::get<int64_t>(value.value);
}

}  // namespace

absl::StatusOr<int64_t> GgufFile::GetInt(std::string_view key) const {
  const GgufValue* value = FindMetadata(key);
  if (value == nullptr) return MissingKey(Sv(key));
  if (!value->is_integer()) return WrongType(Sv(key), *value, "an integer");
  return IntegerAsInt64(Sv(key), *value);
}

absl::StatusOr<double> GgufFile::GetFloat(std::string_view key) const {
  const GgufValue* value = FindMetadata(key);
  if (value == nullptr) return MissingKey(Sv(key));
  if (value->is_float()) return std::get<double>(value->value);
  if (const auto* u = std::get_if<uint64_t>(&value->value); u && value->is_integer()) {
    return static_cast<double>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&value->value); i && value->is_integer()) {
    return static_cast<double>(*i);
  }
  return WrongType(Sv(key), *value, "a float");
}

absl::StatusOr<bool> GgufFile::GetBool(std::string_view key) const {
  const GgufValue* value = FindMetadata(key);
  if (value == nullptr) return MissingKey(Sv(key));
  if (value->type != GgufValueType::kBool) return WrongType(Sv(key), *value, "a bool");
  return std::get<bool>(value->value);
}

absl::StatusOr<std::string> GgufFile::GetString(std::string_view key) const {
  const GgufValue* value = FindMetadata(key);
  if (value == nullptr) return MissingKey(Sv(key));
  if (value->type != GgufValueType::kString) return WrongType(Sv(key), *value, "a string");
  return std::get<std::string>(value->value);
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  const GgufValue* value = FindMetadata(key);
  if (value == nullptr) return MissingKey(Sv(key));
  if (value->type != GgufValueType::kArray || !IsIntegerType(value->array_type)) {
    return WrongType(Sv(key), *value, "an array of integers");
  }
  const auto& elements = std::get<std::vector<GgufValue>>(value->value);
  std::vector<int64_t> out;
  out.reserve(elements.size());
  for (const GgufValue& element : elements) {
    absl::StatusOr<int64_t> v = IntegerAsInt64(Sv(key), element);
    if (!v.ok()) return v.status();
    out.push_back(*v);
  }
  return out;
}

absl::StatusOr<std::vector<float>> GgufFile::GetFloatArray(std::string_view key) const {
  const GgufValue* value = FindMetadata(key);
  if (value == nullptr) return MissingKey(Sv(key));
  if (value->type != GgufValueType::kArray || !IsFloatType(value->array_type)) {
    return WrongType(Sv(key), *value, "an array of floats");
  }
  const auto& elements = std::get<std::vector<GgufValue>>(value->value);
  std::vector<float> out;
  out.reserve(elements.size());
  for (const GgufValue& element : elements) {
    out.push_back(static_cast<float>(std::get<double>(element.value)));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> GgufFile::GetStringArray(std::string_view key) const {
  const GgufValue* value = FindMetadata(key);
  if (value == nullptr) return MissingKey(Sv(key));
  if (value->type != GgufValueType::kArray || value->array_type != GgufValueType::kString) {
    return WrongType(Sv(key), *value, "an array of strings");
  }
  const auto& elements = std::get<std::vector<GgufValue>>(value->value);
  std::vector<std::string> out;
  out.reserve(elements.size());
  for (const GgufValue& element : elements) out.push_back(std::get<std::string>(element.value));
  return out;
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(Sv(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<const GgufTensorInfo*> GgufFile::GetTensor(
    std::string_view name, const std::vector<int64_t>& expected_dims) const {
  const GgufTensorInfo* tensor = FindTensor(name);
  if (tensor == nullptr)
    return absl::NotFoundError(absl::StrCat("missing tensor '", Sv(name), "'"));
  if (!expected_dims.empty() && tensor->dims != expected_dims) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", Sv(name), "' has shape ",
                                                   FormatDims(tensor->dims), ", expected ",
                                                   FormatDims(expected_dims)));
  }
  return tensor;
}

}  // namespace kvserve::engine
