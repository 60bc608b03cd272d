// SafetensorsFile: a read-only, memory-mapped `.safetensors` file (Hugging Face's format: an
// 8-byte little-endian header length, a JSON header mapping tensor names to dtype, shape and
// data_offsets, then the raw tensor bytes).
//
// Open() validates the whole header: every malformation (file shorter than the length field,
// header length past the end of the file, bad JSON, an entry without dtype/shape/data_offsets,
// an unknown dtype, a byte range that does not match the shape or leaves the file) is an
// InvalidArgument/DataLoss error naming the file and, where it applies, the tensor.
//
// Ownership: owns the mapping; SafetensorsTensor::data points into it and lives as long as the
// SafetensorsFile. Thread-safety: immutable after Open(); const methods may run concurrently.
#ifndef KVSERVE_ENGINE_SAFETENSORS_H_
#define KVSERVE_ENGINE_SAFETENSORS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/dtype.h"
#include "engine/mapped_file.h"

namespace kvserve::engine {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;           // as written: "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;  // row-major (PyTorch order): shape.back() is contiguous
  const uint8_t* data = nullptr;
  int64_t num_bytes = 0;
  int64_t num_elements = 0;
};

class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  // nullptr when absent.
  const SafetensorsTensor* Find(absl::string_view name) const;

 private:
  SafetensorsFile() = default;
  absl::Status Parse();

  std::string path_;
  std::unique_ptr<MappedFile> mapping_;
  const uint8_t* map_ = nullptr;  // mapping_'s bytes
  size_t map_size_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;
};

// The ggml element type for a safetensors dtype kvserve turns into f32 (F32, F16, BF16);
// InvalidArgument naming the dtype otherwise.
absl::StatusOr<GgmlType> SafetensorsDTypeToGgml(absl::string_view dtype);

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_SAFETENSORS_H_
