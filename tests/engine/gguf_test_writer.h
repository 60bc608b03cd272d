// GgufTestWriter: builds GGUF files in memory for tests, byte by byte from the format
// description (independently of the reader), including deliberately malformed ones.
//
// Ownership: plain value type; Build() returns the bytes. Thread-compatible.
#ifndef KVSERVE_TESTS_ENGINE_GGUF_TEST_WRITER_H_
#define KVSERVE_TESTS_ENGINE_GGUF_TEST_WRITER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/gguf.h"

namespace kvserve::engine::testing {

// Little-endian encoders, for hand-built (possibly broken) values.
std::string EncodeU32(uint32_t v);
std::string EncodeU64(uint64_t v);
std::string EncodeString(const std::string& s);  // uint64 length + bytes

// Encodes a value's payload (no type tag) as GGUF stores it: scalars in their declared width,
// strings with a length prefix, arrays as element type + count + elements.
std::string EncodeValue(const GgufValue& value);

// Value constructors.
GgufValue U8(uint8_t v);
GgufValue I8(int8_t v);
GgufValue U16(uint16_t v);
GgufValue I16(int16_t v);
GgufValue U32(uint32_t v);
GgufValue I32(int32_t v);
GgufValue U64(uint64_t v);
GgufValue I64(int64_t v);
GgufValue F32(float v);
GgufValue F64(double v);
GgufValue Bool(bool v);
GgufValue Str(std::string v);
GgufValue Array(GgufValueType element_type, std::vector<GgufValue> elements);

struct TestTensor {
  std::string name;
  std::vector<int64_t> dims;  // written as given (may be invalid)
  uint32_t type = 0;          // raw ggml type id (may be invalid)
  std::string data;           // bytes placed in the data section
  // Offset written into the tensor info; default: the next aligned position after the
  // previous tensor's data. Data is only placed when it lands within the first 16 MiB.
  std::optional<uint64_t> offset;
};

struct BuiltGguf {
  std::string bytes;
  size_t tensor_infos_start = 0;  // offset of the first tensor info
  std::vector<size_t> tensor_info_offsets;
  size_t tensor_infos_end = 0;  // offset just past the last tensor info
  size_t data_start = 0;
};

class GgufTestWriter {
 public:
  explicit GgufTestWriter(uint32_t version = 3) : version_(version) {}

  // Adds a key/value written with the value's own type tag.
  GgufTestWriter& Add(std::string key, GgufValue value);
  // Adds a key with an arbitrary raw type tag and raw payload bytes.
  GgufTestWriter& AddRaw(std::string key, uint32_t raw_type, std::string payload);
  GgufTestWriter& AddTensor(TestTensor tensor);
  // Alignment used to lay out the data section (does not write general.alignment).
  GgufTestWriter& SetLayoutAlignment(uint64_t alignment) {
    alignment_ = alignment;
    return *this;
  }

  BuiltGguf Build() const;

 private:
  uint32_t version_;
  uint64_t alignment_ = 32;
  std::vector<std::string> encoded_kvs_;
  std::vector<TestTensor> tensors_;
};

// Writes `bytes` to a file under the test temp dir, named after the running test and the
// process (so parallel tests do not collide), and returns its path. Overwrites on each call.
std::string WriteTempFile(const std::string& bytes);

}  // namespace kvserve::engine::testing

#endif  // KVSERVE_TESTS_ENGINE_GGUF_TEST_WRITER_H_
