#include "engine/safetensors.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/json.h"

namespace kvserve::engine {

using base::JsonTypeName;
using base::JsonValue;
using base::ParseJson;

namespace {

// Bytes per element of every dtype the format defines; 0 when unknown.
int64_t DTypeSize(absl::string_view dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" ||
      dtype == "F8_E5M2") {
    return 1;
  }
  return 0;
}

}  // namespace

absl::StatusOr<GgmlType> SafetensorsDTypeToGgml(absl::string_view dtype) {
  if (dtype == "F32") return GgmlType::kF32;
  if (dtype == "F16") return GgmlType::kF16;
  if (dtype == "BF16") return GgmlType::kBF16;
  return absl::InvalidArgumentError(
      absl::StrCat("dtype ", dtype, " is not supported (supported: F32, F16, BF16)"));
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  absl::StatusOr<std::unique_ptr<MappedFile>> mapping = MappedFile::Open(path, "safetensors file");
  if (!mapping.ok()) return mapping.status();
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->mapping_ = std::move(*mapping);
  file->map_ = file->mapping_->data();
  file->map_size_ = file->mapping_->size();
  absl::Status s = file->Parse();
  if (!s.ok()) return s;
  return file;
}

SafetensorsFile::~SafetensorsFile() = default;

const SafetensorsTensor* SafetensorsFile::Find(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::Status SafetensorsFile::Parse() {
  const std::string where = absl::StrCat("safetensors file '", path_, "'");
  if (map_size_ < 8) {
    return absl::DataLossError(absl::StrCat(where, " is truncated: ", map_size_,
                                            " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | map_[i];
  if (header_len > map_size_ - 8) {
    return absl::DataLossError(absl::StrCat(where, " is truncated: header length ", header_len,
                                            " exceeds the ", map_size_ - 8,
                                            " bytes after the length field"));
  }
  absl::StatusOr<JsonValue> header = ParseJson(
      absl::string_view(reinterpret_cast<const char*>(map_ + 8), static_cast<size_t>(header_len)));
  if (!header.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": malformed header: ", header.status().message()));
  }
  if (header->type != JsonValue::Type::kObject) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": header is ", JsonTypeName(header->type), ", expected an object"));
  }
  const uint8_t* data = map_ + 8 + header_len;
  const uint64_t data_size = map_size_ - 8 - header_len;
  for (const auto& [name, entry] : header->object) {
    if (name == "__metadata__") continue;
    const std::string t = absl::StrCat(where, ": tensor '", name, "'");
    if (entry.type != JsonValue::Type::kObject) {
      return absl::InvalidArgumentError(
          absl::StrCat(t, " is ", JsonTypeName(entry.type), ", expected an object"));
    }
    const JsonValue* dtype = entry.Find("dtype");
    const JsonValue* shape = entry.Find("shape");
    const JsonValue* offsets = entry.Find("data_offsets");
    if (dtype == nullptr || dtype->type != JsonValue::Type::kString) {
      return absl::InvalidArgumentError(absl::StrCat(t, " has no string 'dtype'"));
    }
    if (shape == nullptr || shape->type != JsonValue::Type::kArray) {
      return absl::InvalidArgumentError(absl::StrCat(t, " has no array 'shape'"));
    }
    if (offsets == nullptr || offsets->type != JsonValue::Type::kArray ||
        offsets->array.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(t, " has no 2-element 'data_offsets'"));
    }
    SafetensorsTensor tensor;
    tensor.name = name;
    tensor.dtype = dtype->string;
    const int64_t elem = DTypeSize(tensor.dtype);
    if (elem == 0) {
      return absl::InvalidArgumentError(absl::StrCat(t, " has unknown dtype '", tensor.dtype, "'"));
    }
    int64_t n = 1;
    for (const JsonValue& d : shape->array) {
      if (!d.is_integer || d.integer < 0 || (d.integer > 0 && n > (int64_t{1} << 48) / d.integer)) {
        return absl::InvalidArgumentError(absl::StrCat(t, " has an invalid shape entry"));
      }
      tensor.shape.push_back(d.integer);
      n *= d.integer;
    }
    for (const JsonValue& o : offsets->array) {
      if (!o.is_integer || o.integer < 0) {
        return absl::InvalidArgumentError(absl::StrCat(t, " has an invalid data offset"));
      }
    }
    const int64_t begin = offsets->array[0].integer, end = offsets->array[1].integer;
    if (begin > end || static_cast<uint64_t>(end) > data_size) {
      return absl::DataLossError(absl::StrCat(t, " has data_offsets [", begin, ", ", end,
                                              "] outside the ", data_size, "-byte data section"));
    }
    if (end - begin != n * elem) {
      return absl::InvalidArgumentError(absl::StrCat(
          t, " holds ", end - begin, " bytes but its shape [", absl::StrJoin(tensor.shape, ", "),
          "] of ", tensor.dtype, " needs ", n * elem));
    }
    tensor.data = data + begin;
    tensor.num_bytes = end - begin;
    tensor.num_elements = n;
    if (!index_.emplace(name, tensors_.size()).second) {
      return absl::InvalidArgumentError(absl::StrCat(t, " appears twice"));
    }
    tensors_.push_back(std::move(tensor));
  }
  return absl::OkStatus();
}

}  // namespace kvserve::engine
