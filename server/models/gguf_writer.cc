#include "server/models/gguf_writer.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace kvserve::server {
namespace {

constexpr uint32_t kTypeUint32 = 4, kTypeInt32 = 5, kTypeFloat32 = 6, kTypeBool = 7,
                   kTypeString = 8, kTypeArray = 9;
constexpr uint64_t kAlignment = 32;  // GGUF's default general.alignment

// x86-64 is little-endian, as GGUF is: raw copies are the encoding.
template <typename T>
void Put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

void PutString(std::string& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out += s;
}

}  // namespace

void GgufWriter::AddString(const std::string& key, const std::string& value) {
  PutString(metadata_, key);
  Put<uint32_t>(metadata_, kTypeString);
  PutString(metadata_, value);
  ++num_metadata_;
}

void GgufWriter::AddUint32(const std::string& key, uint32_t value) {
  PutString(metadata_, key);
  Put<uint32_t>(metadata_, kTypeUint32);
  Put<uint32_t>(metadata_, value);
  ++num_metadata_;
}

void GgufWriter::AddInt32(const std::string& key, int32_t value) {
  PutString(metadata_, key);
  Put<uint32_t>(metadata_, kTypeInt32);
  Put<int32_t>(metadata_, value);
  ++num_metadata_;
}

void GgufWriter::AddFloat32(const std::string& key, float value) {
  PutString(metadata_, key);
  Put<uint32_t>(metadata_, kTypeFloat32);
  Put<float>(metadata_, value);
  ++num_metadata_;
}

void GgufWriter::AddBool(const std::string& key, bool value) {
  PutString(metadata_, key);
  Put<uint32_t>(metadata_, kTypeBool);
  metadata_.push_back(value ? '\1' : '\0');
  ++num_metadata_;
}

void GgufWriter::AddStringArray(const std::string& key, const std::vector<std::string>& values) {
  PutString(metadata_, key);
  Put<uint32_t>(metadata_, kTypeArray);
  Put<uint32_t>(metadata_, kTypeString);
  Put<uint64_t>(metadata_, values.size());
  for (const std::string& v : values) PutString(metadata_, v);
  ++num_metadata_;
}

void GgufWriter::AddInt32Array(const std::string& key, const std::vector<int32_t>& values) {
  PutString(metadata_, key);
  Put<uint32_t>(metadata_, kTypeArray);
  Put<uint32_t>(metadata_, kTypeInt32);
  Put<uint64_t>(metadata_, values.size());
  for (int32_t v : values) Put<int32_t>(metadata_, v);
  ++num_metadata_;
}

void GgufWriter::AddTensorF32(const std::string& name, std::vector<int64_t> dims,
                              std::vector<float> values) {
  tensors_.push_back(Tensor{name, std::move(dims), std::move(values)});
}

absl::Status GgufWriter::WriteFile(const std::string& path) const {
  std::string header = "GGUF";
  Put<uint32_t>(header, 3);
  Put<uint64_t>(header, tensors_.size());
  Put<uint64_t>(header, num_metadata_);
  header += metadata_;
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    int64_t n = 1;
    for (int64_t d : t.dims) n *= d;
    if (n != static_cast<int64_t>(t.values.size())) {
      return absl::InternalError(absl::StrCat("tensor '", t.name, "' has ", t.values.size(),
                                              " values for ", n, " elements"));
    }
    PutString(header, t.name);
    Put<uint32_t>(header, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) Put<uint64_t>(header, static_cast<uint64_t>(d));
    Put<uint32_t>(header, 0);  // GGML_TYPE_F32
    Put<uint64_t>(header, offset);
    offset += (t.values.size() * sizeof(float) + kAlignment - 1) / kAlignment * kAlignment;
  }
  header.resize((header.size() + kAlignment - 1) / kAlignment * kAlignment, '\0');

  // Unique per process: several servers may write the same cached file at once.
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return absl::UnavailableError(absl::StrCat("cannot create ", tmp));
  bool ok = std::fwrite(header.data(), 1, header.size(), f) == header.size();
  const char zeros[kAlignment] = {};
  for (const Tensor& t : tensors_) {
    const size_t bytes = t.values.size() * sizeof(float);
    ok = ok && std::fwrite(t.values.data(), 1, bytes, f) == bytes;
    const size_t pad = (kAlignment - bytes % kAlignment) % kAlignment;
    ok = ok && std::fwrite(zeros, 1, pad, f) == pad;
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::UnavailableError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

}  // namespace kvserve::server
