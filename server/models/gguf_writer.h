// GgufWriter: writes small GGUF v3 files (metadata + f32 tensors), enough for the built-in demo
// model. The reader is engine/gguf.h; this writer is deliberately separate from it.
//
// Ownership: plain value type holding everything in memory until WriteFile. Thread-compatible.
#ifndef KVSERVE_SERVER_MODELS_GGUF_WRITER_H_
#define KVSERVE_SERVER_MODELS_GGUF_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace kvserve::server {

class GgufWriter {
 public:
  void AddString(const std::string& key, const std::string& value);
  void AddUint32(const std::string& key, uint32_t value);
  void AddInt32(const std::string& key, int32_t value);
  void AddFloat32(const std::string& key, float value);
  void AddBool(const std::string& key, bool value);
  void AddStringArray(const std::string& key, const std::vector<std::string>& values);
  void AddInt32Array(const std::string& key, const std::vector<int32_t>& values);
  // `dims` in ggml order (dims[0] contiguous); values.size() must be their product.
  void AddTensorF32(const std::string& name, std::vector<int64_t> dims, std::vector<float> values);

  // Writes to a temporary file next to `path` and renames it, so readers never see a half-written
  // file.
  absl::Status WriteFile(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;
    std::vector<float> values;
  };
  std::string metadata_;  // encoded key/value pairs
  uint64_t num_metadata_ = 0;
  std::vector<Tensor> tensors_;
};

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_MODELS_GGUF_WRITER_H_
