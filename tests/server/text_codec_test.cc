#include "server/models/text_codec.h"

#include <string>

#include "gtest/gtest.h"

namespace kvserve::server {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(ByteLevelCodecTest, AnyBytesRoundTrip) {
  ByteLevelCodec codec;
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  absl::StatusOr<std::vector<int32_t>> ids = codec.Encode(all, /*add_special_tokens=*/true);
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->size(), 257u);
  EXPECT_EQ((*ids)[0], 256);  // BOS
  EXPECT_EQ((*ids)[1], 0);
  EXPECT_EQ((*ids)[256], 255);
  EXPECT_EQ(codec.Decode(*ids), all);  // BOS decodes to nothing
  EXPECT_EQ(codec.TokenPiece(257), "");
  EXPECT_EQ(codec.eos_ids(), absl::flat_hash_set<int32_t>({257}));
}

}  // namespace
}  // namespace kvserve::server
