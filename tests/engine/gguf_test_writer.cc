#include "tests/engine/gguf_test_writer.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <variant>

#include "gtest/gtest.h"

namespace kvserve::engine::testing {
namespace {

template <typename T>
std::string EncodeLittleEndian(T v) {
  std::string out(sizeof(T), '\0');
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  for (size_t i = 0; i < sizeof(T); ++i) out[i] = static_cast<char>((bits >> (8 * i)) & 0xff);
  return out;
}

GgufValue Make(GgufValueType type, decltype(GgufValue::value) v) {
  GgufValue value;
  value.type = type;
  value.value = std::move(v);
  return value;
}

// Removes the files WriteTempFile created when the test process exits.
struct TempFileCleaner {
  std::set<std::string> paths;
  ~TempFileCleaner() {
    for (const std::string& path : paths) std::remove(path.c_str());
  }
};

TempFileCleaner& Cleaner() {
  static TempFileCleaner cleaner;
  return cleaner;
}

}  // namespace

std::string EncodeU32(uint32_t v) { return EncodeLittleEndian(v); }
std::string EncodeU64(uint64_t v) { return EncodeLittleEndian(v); }
std::string EncodeString(const std::string& s) { return EncodeU64(s.size()) + s; }

std::string EncodeValue(const GgufValue& value) {
  const auto u = [&] { return std::get<uint64_t>(value.value); };
  const auto i = [&] { return std::get<int64_t>(value.value); };
  const auto f = [&] { return std::get<double>(value.value); };
  switch (value.type) {
    case GgufValueType::kUint8:
      return EncodeLittleEndian(static_cast<uint8_t>(u()));
    case GgufValueType::kInt8:
      return EncodeLittleEndian(static_cast<int8_t>(i()));
    case GgufValueType::kUint16:
      return EncodeLittleEndian(static_cast<uint16_t>(u()));
    case GgufValueType::kInt16:
      return EncodeLittleEndian(static_cast<int16_t>(i()));
    case GgufValueType::kUint32:
      return EncodeLittleEndian(static_cast<uint32_t>(u()));
    case GgufValueType::kInt32:
      return EncodeLittleEndian(static_cast<int32_t>(i()));
    case GgufValueType::kUint64:
      return EncodeLittleEndian(u());
    case GgufValueType::kInt64:
      return EncodeLittleEndian(i());
    case GgufValueType::kFloat32:
      return EncodeLittleEndian(static_cast<float>(f()));
    case GgufValueType::kFloat64:
      return EncodeLittleEndian(f());
    case GgufValueType::kBool:
      return std::string(1, std::get<bool>(value.value) ? '\1' : '\0');
    case GgufValueType::kString:
      return EncodeString(std::get<std::string>(value.value));
    case GgufValueType::kArray: {
      const auto& elements = std::get<std::vector<GgufValue>>(value.value);
      std::string out =
          EncodeU32(static_cast<uint32_t>(value.array_type)) + EncodeU64(elements.size());
      for (const GgufValue& element : elements) out += EncodeValue(element);
      return out;
    }
  }
  return "";
}

GgufValue U8(uint8_t v) { return Make(GgufValueType::kUint8, uint64_t{v}); }
GgufValue I8(int8_t v) { return Make(GgufValueType::kInt8, int64_t{v}); }
GgufValue U16(uint16_t v) { return Make(GgufValueType::kUint16, uint64_t{v}); }
GgufValue I16(int16_t v) { return Make(GgufValueType::kInt16, int64_t{v}); }
GgufValue U32(uint32_t v) { return Make(GgufValueType::kUint32, uint64_t{v}); }
GgufValue I32(int32_t v) { return Make(GgufValueType::kInt32, int64_t{v}); }
GgufValue U64(uint64_t v) { return Make(GgufValueType::kUint64, v); }
GgufValue I64(int64_t v) { return Make(GgufValueType::kInt64, v); }
GgufValue F32(float v) { return Make(GgufValueType::kFloat32, double{v}); }
GgufValue F64(double v) { return Make(GgufValueType::kFloat64, v); }
GgufValue Bool(bool v) { return Make(GgufValueType::kBool, v); }
GgufValue Str(std::string v) { return Make(GgufValueType::kString, std::move(v)); }
GgufValue Array(GgufValueType element_type, std::vector<GgufValue> elements) {
  GgufValue value = Make(GgufValueType::kArray, std::move(elements));
  value.array_type = element_type;
  return value;
}

GgufTestWriter& GgufTestWriter::Add(std::string key, GgufValue value) {
  return AddRaw(std::move(key), static_cast<uint32_t>(value.type), EncodeValue(value));
}

GgufTestWriter& GgufTestWriter::AddRaw(std::string key, uint32_t raw_type, std::string payload) {
  encoded_kvs_.push_back(EncodeString(key) + EncodeU32(raw_type) + payload);
  return *this;
}

GgufTestWriter& GgufTestWriter::AddTensor(TestTensor tensor) {
  tensors_.push_back(std::move(tensor));
  return *this;
}

BuiltGguf GgufTestWriter::Build() const {
  BuiltGguf built;
  std::string& out = built.bytes;
  out = "GGUF" + EncodeU32(version_) + EncodeU64(tensors_.size()) + EncodeU64(encoded_kvs_.size());
  for (const std::string& kv : encoded_kvs_) out += kv;
  built.tensor_infos_start = out.size();

  // Lay out the data section: each tensor at the next aligned offset unless overridden.
  std::vector<uint64_t> offsets;
  uint64_t next = 0;
  for (const TestTensor& tensor : tensors_) {
    const uint64_t offset = tensor.offset.value_or(next);
    offsets.push_back(offset);
    uint64_t end = offset + tensor.data.size();
    next = (end + alignment_ - 1) / alignment_ * alignment_;
  }
  for (size_t t = 0; t < tensors_.size(); ++t) {
    const TestTensor& tensor = tensors_[t];
    built.tensor_info_offsets.push_back(out.size());
    out += EncodeString(tensor.name) + EncodeU32(static_cast<uint32_t>(tensor.dims.size()));
    for (int64_t d : tensor.dims) out += EncodeU64(static_cast<uint64_t>(d));
    out += EncodeU32(tensor.type) + EncodeU64(offsets[t]);
  }
  built.tensor_infos_end = out.size();
  if (tensors_.empty()) {
    built.data_start = out.size();
    return built;
  }
  out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, '\0');
  built.data_start = out.size();
  for (size_t t = 0; t < tensors_.size(); ++t) {
    if (offsets[t] > (uint64_t{1} << 24)) continue;  // deliberately out-of-file offsets
    const size_t at = built.data_start + offsets[t];
    if (out.size() < at + tensors_[t].data.size()) out.resize(at + tensors_[t].data.size(), '\0');
    out.replace(at, tensors_[t].data.size(), tensors_[t].data);
  }
  return built;
}

std::string WriteTempFile(const std::string& bytes) {
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = test != nullptr ? std::string(test->test_suite_name()) + "." + test->name()
                                     : std::string("no_test");
  for (char& c : name) {
    if (c == '/') c = '_';  // parameterized test names contain slashes
  }
  const std::string path =
      ::testing::TempDir() + "kvserve_" + name + "_" + std::to_string(::getpid()) + ".gguf";
  Cleaner().paths.insert(path);
  // Unlink rather than truncate: ext4 flushes files that are truncated and rewritten, which
  // makes thousands of rewrites slow.
  std::remove(path.c_str());
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.close();
  EXPECT_TRUE(file.good()) << "cannot write " << path;
  return path;
}

}  // namespace kvserve::engine::testing
