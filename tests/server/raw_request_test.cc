// Requests read from their bytes (server/grpc/raw_request.h): the wire bytes are written by hand
// here, so the expectations do not come from the protobuf code under test.
#include "server/grpc/raw_request.h"

#include <string>

#include "gtest/gtest.h"
#include "kvserve/v1/generation.pb.h"

namespace kvserve::server {
namespace {

// Field `number` as a length-delimited record (lengths < 128), and as a varint (< 128).
std::string Ld(int number, const std::string& payload) {
  return std::string{static_cast<char>(number << 3 | 2), static_cast<char>(payload.size())} +
         payload;
}
std::string Varint(int number, int value) {
  return std::string{static_cast<char>(number << 3), static_cast<char>(value)};
}

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

const std::string kBad = "ok\xff";  // 0xFF is never UTF-8

std::string PathOf(const google::protobuf::Descriptor* type, const std::string& wire) {
  std::optional<InvalidUtf8Field> found = FindInvalidUtf8Field(*type, wire);
  return found.has_value() ? found->path : "(none)";
}

TEST(FindInvalidUtf8FieldTest, NamesTheFieldByItsPath) {
  const auto* generate = kvserve::v1::GenerateRequest::descriptor();
  const auto* chat = kvserve::v1::ChatRequest::descriptor();
  EXPECT_EQ(PathOf(generate, Ld(2, "fine") + Varint(4, 5)), "(none)");
  EXPECT_EQ(PathOf(generate, Ld(2, kBad)), "prompt");
  EXPECT_EQ(PathOf(generate, Ld(1, kBad) + Ld(2, "p")), "request_id");
  EXPECT_EQ(PathOf(generate, Ld(6, "a") + Ld(6, "b") + Ld(6, kBad)), "stop[2]");
  const std::string user = Ld(1, "user") + Ld(2, "hi");
  EXPECT_EQ(PathOf(chat, Ld(1, user) + Ld(1, Ld(1, "user") + Ld(2, kBad))), "messages[1].content");
  EXPECT_EQ(PathOf(chat, Ld(1, user) + Ld(3, Ld(6, kBad))), "generation.stop[0]");
  // Token bytes are `bytes`, not text: any byte goes.
  EXPECT_EQ(PathOf(kvserve::v1::TokenLogprob::descriptor(), Ld(4, kBad)), "(none)");
  // An unknown field, and a string field sent with another wire type, are not text.
  EXPECT_EQ(PathOf(generate, Ld(99, kBad) + Varint(2, 7)), "(none)");
  std::optional<InvalidUtf8Field> found = FindInvalidUtf8Field(*generate, Ld(2, kBad));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->offset, 2u);
}

TEST(ReadRequestTest, EachFailureHasItsOwnStatus) {
  kvserve::v1::GenerateRequest request;
  // No message: the call ended before its request arrived.
  EXPECT_EQ(ReadRequest(grpc::ByteBuffer(), &request).code(), absl::StatusCode::kCancelled);

  absl::Status s = ReadRequest(Buffer(Ld(2, "hi") + Ld(6, kBad)), &request);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().substr(0, 35), "stop[0] is not valid UTF-8 (at byte");

  for (const std::string& malformed : {std::string("\x12\x05"
                                                   "ab"),
                                       std::string("\x0b")}) {
    s = ReadRequest(Buffer(malformed), &request);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << malformed;
    EXPECT_NE(s.message().find("not a valid kvserve.v1.GenerateRequest"), std::string::npos);
  }

  ASSERT_TRUE(ReadRequest(Buffer(Ld(2, "h\xc3\xa9") + Varint(4, 3)), &request).ok());
  EXPECT_EQ(request.prompt(), "h\xc3\xa9");
  EXPECT_EQ(request.max_tokens(), 3);
  // An empty message is a valid one (all fields unset), and the request is cleared first.
  ASSERT_TRUE(ReadRequest(Buffer(""), &request).ok());
  EXPECT_FALSE(request.has_max_tokens());
}

TEST(WriteResponseTest, BytesOfTheMessageReplacingTheBuffer) {
  kvserve::v1::TokenizeResponse response;
  response.add_token_ids(7);
  response.set_text("x");
  grpc::ByteBuffer wire = Buffer("stale");
  ASSERT_TRUE(WriteResponse(response, &wire).ok());
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(wire.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  EXPECT_EQ(bytes, std::string("\x0a\x01\x07\x12\x01x"));  // packed ids [7], text "x"
}

}  // namespace
}  // namespace kvserve::server
