// GgufFile: a read-only, memory-mapped GGUF model file (versions 2 and 3).
//
// Open() reads and validates the header, every metadata key/value (all GGUF value types,
// including nested arrays), and the tensor directory; tensor data stays in the mapping and is
// read lazily through GgufTensorInfo::data. Every malformation (truncated file, wrong magic,
// unknown version, unknown value or tensor type, tensor data past the end of the file, bad
// alignment) is an absl::Status error whose message names the offending key or tensor; no input
// can crash the reader.
//
// Ownership: the GgufFile owns the mapping; pointers returned by accessors (values, tensor
// infos, tensor data) live as long as the GgufFile. Thread-safety: immutable after Open(), so
// const methods may be called concurrently.
#ifndef KVSERVE_ENGINE_GGUF_H_
#define KVSERVE_ENGINE_GGUF_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/dtype.h"
#include "engine/mapped_file.h"

namespace kvserve::engine {

// GGUF metadata value types, as numbered in the file format.
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

std::string_view GgufValueTypeName(GgufValueType type);

// One metadata value. Scalars are widened into the variant (signed integers to int64_t,
// unsigned to uint64_t, floats to double) while `type` keeps the type written in the file.
// An array keeps its element type in `array_type` and its elements in `array` (elements of a
// nested array are themselves arrays).
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  GgufValueType array_type = GgufValueType::kUint8;  // meaningful when type == kArray
  std::variant<uint64_t, int64_t, double, bool, std::string, std::vector<GgufValue>> value;

  bool is_integer() const;  // any of the 8 integer types
  bool is_float() const;    // float32 or float64
};

struct GgufTensorInfo {
  std::string name;
  // Dimensions in ggml order: dims[0] is the contiguous (fastest-varying) one. A weight of a
  // linear layer with `in` inputs and `out` outputs has dims {in, out}.
  std::vector<int64_t> dims;
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;            // relative to the start of the tensor data section
  const uint8_t* data = nullptr;  // into the mapping
  int64_t num_bytes = 0;
  int64_t num_elements = 0;
};

class GgufFile {
 public:
  // Maps and parses `path`. Errors: NotFound (no such file), InvalidArgument / DataLoss for
  // malformed content, each naming what is wrong.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);

  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }

  // Metadata, in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  // nullptr when absent.
  const GgufValue* FindMetadata(std::string_view key) const;

  // Typed getters. Errors name the key: NotFound "missing metadata key 'K'", InvalidArgument
  // "metadata key 'K' is a string, expected an integer". Integers convert to float; integer
  // getters reject values out of range.
  absl::StatusOr<int64_t> GetInt(std::string_view key) const;
  absl::StatusOr<double> GetFloat(std::string_view key) const;
  absl::StatusOr<bool> GetBool(std::string_view key) const;
  absl::StatusOr<std::string> GetString(std::string_view key) const;
  // Array getters: element types must match (integer arrays of any integer type for GetIntArray).
  absl::StatusOr<std::vector<int64_t>> GetIntArray(std::string_view key) const;
  absl::StatusOr<std::vector<float>> GetFloatArray(std::string_view key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const GgufTensorInfo* FindTensor(std::string_view name) const;
  // NotFound "missing tensor 'NAME'" when absent; InvalidArgument "tensor 'NAME' has shape
  // [a, b], expected [c, d]" when `expected_dims` (ggml order) is non-empty and differs.
  absl::StatusOr<const GgufTensorInfo*> GetTensor(
      std::string_view name, const std::vector<int64_t>& expected_dims = {}) const;

 private:
  GgufFile() = default;
  absl::Status Parse();

  std::string path_;
  std::unique_ptr<MappedFile> mapping_;
  const uint8_t* map_ = nullptr;  // mapping_'s bytes
  size_t map_size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  absl::flat_hash_map<std::string, size_t> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_GGUF_H_
