#include "server/grpc/raw_request.h"

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "base/utf8.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/impl/codegen/proto_utils.h"

namespace kvserve::server {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormatLite;

// Nesting the walk follows at most. kvserve's requests nest 3 deep and no message type contains
// itself, so this only bounds the recursion should one ever do.
constexpr int kMaxNesting = 32;

std::optional<InvalidUtf8Field> Walk(const Descriptor& type, absl::string_view wire, int depth) {
  if (depth > kMaxNesting) return std::nullopt;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(wire.data()),
                                            static_cast<int>(wire.size()));
  absl::flat_hash_map<int, int> occurrences;  // of each repeated field so far: its index
  // ReadTag is 0 at the end and on malformed bytes.
  while (const uint32_t tag = in.ReadTag()) {
    const FieldDescriptor* field =
        type.FindFieldByNumber(static_cast<int>(WireFormatLite::GetTagFieldNumber(tag)));
    const bool text_or_message =
        field != nullptr &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED &&
        (field->type() == FieldDescriptor::TYPE_STRING ||
         field->type() == FieldDescriptor::TYPE_MESSAGE);
    if (!text_or_message) {
      if (!WireFormatLite::SkipField(&in, tag)) return std::nullopt;
      continue;
    }
    uint32_t length;
    if (!in.ReadVarint32(&length)) return std::nullopt;
    const int start = in.CurrentPosition();
    if (!in.Skip(static_cast<int>(length))) return std::nullopt;
    const absl::string_view payload = wire.substr(start, length);
    std::string path = field->name();
    if (field->is_repeated()) absl::StrAppend(&path, "[", occurrences[field->number()]++, "]");
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      const size_t bad = base::FindInvalidUtf8(payload);
      if (bad != absl::string_view::npos) return InvalidUtf8Field{std::move(path), bad};
    } else if (std::optional<InvalidUtf8Field> inner =
                   Walk(*field->message_type(), payload, depth + 1)) {
      inner->path = absl::StrCat(path, ".", inner->path);
      return inner;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<InvalidUtf8Field> FindInvalidUtf8Field(const Descriptor& type,
                                                     absl::string_view wire) {
  return Walk(type, wire, 0);
}

absl::Status ReadRequest(const grpc::ByteBuffer& wire, google::protobuf::Message* request) {
  request->Clear();
  const std::string& type = request->GetDescriptor()->full_name();
  if (!wire.Valid()) {
    return absl::CancelledError(
        absl::StrCat("the call ended before its request (", type, ") arrived"));
  }
  std::vector<grpc::Slice> slices;
  if (!wire.Dump(&slices).ok()) return absl::InternalError("unreadable request bytes");
  std::string bytes;
  bytes.reserve(wire.Length());
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  if (std::optional<InvalidUtf8Field> bad =
          FindInvalidUtf8Field(*request->GetDescriptor(), bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        bad->path, " is not valid UTF-8 (at byte ", bad->offset, "): ", type,
        "'s string fields must be (arbitrary prompt bytes can be sent as prompt_token_ids)"));
  }
  if (!request->ParseFromString(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request is not a valid ", type, " message (", bytes.size(), " bytes)"));
  }
  return absl::OkStatus();
}

absl::Status WriteResponse(const google::protobuf::Message& response, grpc::ByteBuffer* wire) {
  wire->Clear();  // the writer fills an empty buffer only (a reused one is the last message's)
  bool own_buffer = false;
  const grpc::Status status =
      grpc::SerializationTraits<google::protobuf::Message>::Serialize(response, wire, &own_buffer);
  if (status.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("could not serialize a ",
                                          response.GetDescriptor()->full_name(), ": ",
                                          status.error_message()));
}

}  // namespace kvserve::server
