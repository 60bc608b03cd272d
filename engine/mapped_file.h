// MappedFile: a whole regular file mapped read-only, for the model file readers (GGUF,
// safetensors) that hand out pointers into their tensors' bytes without copying them.
//
// Ownership: owns the mapping; pointers into data() stay valid until the MappedFile is
// destroyed. Thread-safety: immutable after Open; any thread may read.
#ifndef KVSERVE_ENGINE_MAPPED_FILE_H_
#define KVSERVE_ENGINE_MAPPED_FILE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvserve::engine {

class MappedFile {
 public:
  // Maps `path`. `kind` names the file in errors ("GGUF file"). Errors: NotFound for a missing
  // file, InvalidArgument for one that is not a regular file, the errno's code otherwise; each
  // names the path. An empty file maps to data() == nullptr, size() == 0.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path,
                                                          absl::string_view kind);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_MAPPED_FILE_H_
