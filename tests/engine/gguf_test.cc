#include "engine/gguf.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/engine/gguf_test_writer.h"

namespace kvserve::engine {
namespace {

using ::kvserve::engine::testing::Array;
using ::kvserve::engine::testing::Bool;
using ::kvserve::engine::testing::BuiltGguf;
using ::kvserve::engine::testing::EncodeString;
using ::kvserve::engine::testing::EncodeU32;
using ::kvserve::engine::testing::EncodeU64;
using ::kvserve::engine::testing::F32;
using ::kvserve::engine::testing::F64;
using ::kvserve::engine::testing::GgufTestWriter;
using ::kvserve::engine::testing::I16;
using ::kvserve::engine::testing::I32;
using ::kvserve::engine::testing::I64;
using ::kvserve::engine::testing::I8;
using ::kvserve::engine::testing::Str;
using ::kvserve::engine::testing::TestTensor;
using ::kvserve::engine::testing::U16;
using ::kvserve::engine::testing::U32;
using ::kvserve::engine::testing::U64;
using ::kvserve::engine::testing::U8;
using ::kvserve::engine::testing::WriteTempFile;

using VT = GgufValueType;

absl::StatusOr<std::unique_ptr<GgufFile>> OpenBytes(const std::string& bytes) {
  return GgufFile::Open(WriteTempFile(bytes));
}

std::string Bytes(const void* data, size_t n) {
  return std::string(static_cast<const char*>(data), n);
}

std::string F32Bytes(const std::vector<float>& values) {
  return Bytes(values.data(), values.size() * sizeof(float));
}

// Overwrites bytes of `file` at `offset`.
void Patch(std::string& file, size_t offset, const std::string& bytes) {
  ASSERT_LE(offset + bytes.size(), file.size());
  file.replace(offset, bytes.size(), bytes);
}

// Expects Open to fail with a message containing every one of `phrases`.
void ExpectOpenError(const std::string& bytes, const std::vector<std::string>& phrases) {
  absl::StatusOr<std::unique_ptr<GgufFile>> file = OpenBytes(bytes);
  ASSERT_FALSE(file.ok()) << "expected an error containing '" << phrases.front() << "'";
  const std::string message(file.status().message());
  for (const std::string& phrase : phrases) {
    EXPECT_NE(message.find(phrase), std::string::npos)
        << "message '" << message << "' lacks '" << phrase << "'";
  }
}

void ExpectValueEq(const GgufValue& actual, const GgufValue& expected, const std::string& where) {
  ASSERT_EQ(actual.type, expected.type) << where;
  if (expected.type != VT::kArray) {
    ASSERT_EQ(actual.value.index(), expected.value.index()) << where;
    if (const auto* u = std::get_if<uint64_t>(&expected.value)) {
      EXPECT_EQ(std::get<uint64_t>(actual.value), *u) << where;
    } else if (const auto* i = std::get_if<int64_t>(&expected.value)) {
      EXPECT_EQ(std::get<int64_t>(actual.value), *i) << where;
    } else if (const auto* d = std::get_if<double>(&expected.value)) {
      EXPECT_EQ(std::get<double>(actual.value), *d) << where;
    } else if (const auto* b = std::get_if<bool>(&expected.value)) {
      EXPECT_EQ(std::get<bool>(actual.value), *b) << where;
    } else {
      EXPECT_EQ(std::get<std::string>(actual.value), std::get<std::string>(expected.value))
          << where;
    }
    return;
  }
  ASSERT_EQ(actual.array_type, expected.array_type) << where;
  const auto& a = std::get<std::vector<GgufValue>>(actual.value);
  const auto& e = std::get<std::vector<GgufValue>>(expected.value);
  ASSERT_EQ(a.size(), e.size()) << where;
  for (size_t i = 0; i < a.size(); ++i) {
    ExpectValueEq(a[i], e[i], where + "[" + std::to_string(i) + "]");
  }
}

std::vector<std::pair<std::string, GgufValue>> AllValueTypes() {
  return {
      {"u8", U8(255)},
      {"i8", I8(-128)},
      {"u16", U16(65535)},
      {"i16", I16(-32768)},
      {"u32", U32(4294967295u)},
      {"i32", I32(std::numeric_limits<int32_t>::min())},
      {"u64", U64(std::numeric_limits<uint64_t>::max())},
      {"i64", I64(std::numeric_limits<int64_t>::min())},
      {"f32", F32(-1.5f)},
      {"f64", F64(3.141592653589793)},
      {"bool.true", Bool(true)},
      {"bool.false", Bool(false)},
      {"str", Str("h\xc3\xa9llo")},
      {"str.empty", Str("")},
      {"str.nul", Str(std::string("a\0b", 3))},
      {"arr.u8", Array(VT::kUint8, {U8(0), U8(200)})},
      {"arr.i8", Array(VT::kInt8, {I8(-1), I8(5)})},
      {"arr.u16", Array(VT::kUint16, {U16(1)})},
      {"arr.i16", Array(VT::kInt16, {I16(-300)})},
      {"arr.u32", Array(VT::kUint32, {U32(7), U32(8), U32(9)})},
      {"arr.i32", Array(VT::kInt32, {I32(-7), I32(0)})},
      {"arr.u64", Array(VT::kUint64, {U64(1ull << 40)})},
      {"arr.i64", Array(VT::kInt64, {I64(-(1ll << 40))})},
      {"arr.f32", Array(VT::kFloat32, {F32(0.25f), F32(-2.0f)})},
      {"arr.f64", Array(VT::kFloat64, {F64(1e300)})},
      {"arr.bool", Array(VT::kBool, {Bool(true), Bool(false)})},
      {"arr.str", Array(VT::kString, {Str("a"), Str(""), Str("ccc")})},
      {"arr.empty", Array(VT::kInt32, {})},
      {"arr.nested",
       Array(VT::kArray, {Array(VT::kInt32, {I32(1), I32(2)}), Array(VT::kString, {Str("x")}),
                          Array(VT::kArray, {Array(VT::kUint8, {U8(3)})})})},
  };
}

class GgufVersionTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(GgufVersionTest, RoundTripsEveryValueTypeAndTensors) {
  const std::vector<std::pair<std::string, GgufValue>> values = AllValueTypes();
  GgufTestWriter writer(GetParam());
  for (const auto& [key, value] : values) writer.Add(key, value);
  const std::vector<float> weights = {1, 2, 3, 4, 5, 6, 7, -8};
  const std::string half_bytes("\x00\x3c\x00\xc1", 4);  // f16 1.0, -2.5
  std::string q8_bytes(68, '\x01');
  writer.AddTensor({"w.f32", {4, 2}, 0, F32Bytes(weights)});
  writer.AddTensor({"w.f16", {2}, 1, std::string(half_bytes.data(), 4)});
  writer.AddTensor({"w.q8", {32, 2}, 8, q8_bytes});
  const BuiltGguf built = writer.Build();

  absl::StatusOr<std::unique_ptr<GgufFile>> file = OpenBytes(built.bytes);
  ASSERT_TRUE(file.ok()) << file.status();
  const GgufFile& gguf = **file;
  EXPECT_EQ(gguf.version(), GetParam());
  EXPECT_EQ(gguf.alignment(), 32u);
  ASSERT_EQ(gguf.metadata().size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(gguf.metadata()[i].first, values[i].first);  // file order kept
    ExpectValueEq(gguf.metadata()[i].second, values[i].second, values[i].first);
    ASSERT_NE(gguf.FindMetadata(values[i].first), nullptr);
  }
  EXPECT_EQ(gguf.FindMetadata("absent"), nullptr);

  ASSERT_EQ(gguf.tensors().size(), 3u);
  const GgufTensorInfo* f32 = gguf.FindTensor("w.f32");
  ASSERT_NE(f32, nullptr);
  EXPECT_EQ(f32->dims, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(f32->type, GgmlType::kF32);
  EXPECT_EQ(f32->num_elements, 8);
  EXPECT_EQ(f32->num_bytes, 32);
  EXPECT_EQ(f32->offset, 0u);
  EXPECT_EQ(Bytes(f32->data, 32), F32Bytes(weights));
  const GgufTensorInfo* f16 = gguf.FindTensor("w.f16");
  ASSERT_NE(f16, nullptr);
  EXPECT_EQ(f16->type, GgmlType::kF16);
  EXPECT_EQ(f16->offset, 32u);
  EXPECT_EQ(f16->num_bytes, 4);
  EXPECT_EQ(Bytes(f16->data, 4), std::string(half_bytes.data(), 4));
  const GgufTensorInfo* q8 = gguf.FindTensor("w.q8");
  ASSERT_NE(q8, nullptr);
  EXPECT_EQ(q8->type, GgmlType::kQ8_0);
  EXPECT_EQ(q8->offset, 64u);
  EXPECT_EQ(q8->num_elements, 64);
  EXPECT_EQ(q8->num_bytes, 68);
  EXPECT_EQ(Bytes(q8->data, 68), q8_bytes);
  EXPECT_EQ(gguf.FindTensor("nope"), nullptr);
}

INSTANTIATE_TEST_SUITE_P(Versions, GgufVersionTest, ::testing::Values(2u, 3u));

TEST(GgufGettersTest, TypedGetters) {
  GgufTestWriter writer;
  for (const auto& [key, value] : AllValueTypes()) writer.Add(key, value);
  absl::StatusOr<std::unique_ptr<GgufFile>> file = OpenBytes(writer.Build().bytes);
  ASSERT_TRUE(file.ok()) << file.status();
  const GgufFile& g = **file;

  EXPECT_EQ(*g.GetInt("u8"), 255);
  EXPECT_EQ(*g.GetInt("i8"), -128);
  EXPECT_EQ(*g.GetInt("u32"), 4294967295ll);
  EXPECT_EQ(*g.GetInt("i64"), std::numeric_limits<int64_t>::min());
  absl::StatusOr<int64_t> too_big = g.GetInt("u64");
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(std::string(too_big.status().message()).find("'u64'"), std::string::npos);
  absl::StatusOr<int64_t> not_int = g.GetInt("str");
  ASSERT_FALSE(not_int.ok());
  EXPECT_EQ(not_int.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(not_int.status().message(), "metadata key 'str' is a string, expected an integer");
  EXPECT_FALSE(g.GetInt("f32").ok());
  EXPECT_FALSE(g.GetInt("bool.true").ok());

  EXPECT_EQ(*g.GetFloat("f32"), -1.5);
  EXPECT_EQ(*g.GetFloat("f64"), 3.141592653589793);
  EXPECT_EQ(*g.GetFloat("i16"), -32768.0);  // integers convert
  EXPECT_EQ(*g.GetFloat("u32"), 4294967295.0);
  EXPECT_FALSE(g.GetFloat("str").ok());

  EXPECT_EQ(*g.GetBool("bool.true"), true);
  EXPECT_EQ(*g.GetBool("bool.false"), false);
  EXPECT_FALSE(g.GetBool("u8").ok());

  EXPECT_EQ(*g.GetString("str"), "h\xc3\xa9llo");
  EXPECT_EQ(*g.GetString("str.nul"), std::string("a\0b", 3));
  absl::StatusOr<std::string> not_string = g.GetString("u16");
  ASSERT_FALSE(not_string.ok());
  EXPECT_EQ(not_string.status().message(), "metadata key 'u16' is a uint16, expected a string");

  EXPECT_EQ(*g.GetIntArray("arr.i8"), (std::vector<int64_t>{-1, 5}));
  EXPECT_EQ(*g.GetIntArray("arr.u32"), (std::vector<int64_t>{7, 8, 9}));
  EXPECT_EQ(*g.GetIntArray("arr.empty"), std::vector<int64_t>{});
  EXPECT_EQ(*g.GetIntArray("arr.i64"), (std::vector<int64_t>{-(1ll << 40)}));
  absl::StatusOr<std::vector<int64_t>> str_as_ints = g.GetIntArray("arr.str");
  ASSERT_FALSE(str_as_ints.ok());
  EXPECT_EQ(str_as_ints.status().message(),
            "metadata key 'arr.str' is an array of string, expected an array of integers");
  EXPECT_FALSE(g.GetIntArray("u8").ok());
  EXPECT_FALSE(g.GetIntArray("arr.nested").ok());

  EXPECT_EQ(*g.GetFloatArray("arr.f32"), (std::vector<float>{0.25f, -2.0f}));
  EXPECT_FALSE(g.GetFloatArray("arr.i32").ok());
  EXPECT_EQ(*g.GetStringArray("arr.str"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_FALSE(g.GetStringArray("str").ok());

  absl::StatusOr<int64_t> missing = g.GetInt("no.such.key");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "missing metadata key 'no.such.key'");
}

TEST(GgufGettersTest, GetTensorChecksShape) {
  GgufTestWriter writer;
  writer.AddTensor({"t", {3, 2}, 0, std::string(24, '\0')});
  absl::StatusOr<std::unique_ptr<GgufFile>> file = OpenBytes(writer.Build().bytes);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->GetTensor("t").ok());
  EXPECT_TRUE((*file)->GetTensor("t", {3, 2}).ok());
  absl::StatusOr<const GgufTensorInfo*> wrong = (*file)->GetTensor("t", {2, 3});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().message(), "tensor 't' has shape [3, 2], expected [2, 3]");
  absl::StatusOr<const GgufTensorInfo*> missing = (*file)->GetTensor("u");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "missing tensor 'u'");
}

TEST(GgufAlignmentTest, CustomAlignment64) {
  const std::vector<float> a = {1, 2, 3};
  const std::vector<float> b = {4, 5, 6, 7, 8};
  // Pad the metadata so the directory ends at 32 mod 64: a reader that assumed 32-byte
  // alignment would then start the data section 32 bytes too early.
  for (size_t filler = 0; filler < 64; ++filler) {
    GgufTestWriter writer;
    writer.SetLayoutAlignment(64);
    writer.Add("general.alignment", U32(64));
    writer.Add("filler", Str(std::string(filler, 'x')));
    writer.AddTensor({"a", {3}, 0, F32Bytes(a)});
    writer.AddTensor({"b", {5}, 0, F32Bytes(b)});
    const BuiltGguf built = writer.Build();
    if (built.tensor_infos_end % 64 != 32) continue;
    ASSERT_EQ(built.data_start % 64, 0u);

    absl::StatusOr<std::unique_ptr<GgufFile>> file = OpenBytes(built.bytes);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ((*file)->alignment(), 64u);
    const GgufTensorInfo* ta = (*file)->FindTensor("a");
    const GgufTensorInfo* tb = (*file)->FindTensor("b");
    ASSERT_NE(ta, nullptr);
    ASSERT_NE(tb, nullptr);
    EXPECT_EQ(ta->offset, 0u);
    EXPECT_EQ(tb->offset, 64u);
    EXPECT_EQ(Bytes(ta->data, 12), F32Bytes(a));
    EXPECT_EQ(Bytes(tb->data, 20), F32Bytes(b));
    EXPECT_EQ(tb->data - ta->data, 64);
    return;
  }
  FAIL() << "no filler length put the directory end at 32 mod 64";
}

TEST(GgufAlignmentTest, RejectsBadAlignment) {
  for (uint32_t bad : {0u, 48u, 3u}) {
    GgufTestWriter writer;
    writer.Add("general.alignment", U32(bad));
    ExpectOpenError(writer.Build().bytes,
                    {"general.alignment", "power of two", std::to_string(bad)});
  }
  GgufTestWriter wrong_type;
  wrong_type.Add("general.alignment", U64(32));
  ExpectOpenError(wrong_type.Build().bytes, {"'general.alignment' is a uint64, expected a uint32"});

  // A tensor offset that is 32- but not 64-aligned under general.alignment = 64.
  GgufTestWriter misaligned;
  misaligned.SetLayoutAlignment(64);
  misaligned.Add("general.alignment", U32(64));
  misaligned.AddTensor({"first", {4}, 0, std::string(16, '\0')});
  misaligned.AddTensor({"second", {4}, 0, std::string(16, '\0'), 96});
  ExpectOpenError(misaligned.Build().bytes, {"'second'", "alignment 64"});
}

// A small valid file touching every structure: several value types, arrays, tensors.
BuiltGguf SmallValidFile() {
  GgufTestWriter writer;
  writer.Add("general.architecture", Str("llama"));
  writer.Add("n", U32(7));
  writer.Add("eps", F32(1e-5f));
  writer.Add("flag", Bool(true));
  writer.Add("tokens", Array(VT::kString, {Str("<s>"), Str("ab")}));
  writer.Add("nested", Array(VT::kArray, {Array(VT::kInt16, {I16(1), I16(-2)})}));
  writer.AddTensor({"tok", {4, 2}, 0, F32Bytes({1, 2, 3, 4, 5, 6, 7, 8})});
  writer.AddTensor({"blk.0.q", {32}, 8, std::string(34, '\x02')});
  return writer.Build();
}

TEST(GgufCorruptionTest, SmallValidFileOpens) {
  absl::StatusOr<std::unique_ptr<GgufFile>> file = OpenBytes(SmallValidFile().bytes);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->tensors().size(), 2u);
}

TEST(GgufCorruptionTest, HeaderErrors) {
  std::string bytes = SmallValidFile().bytes;
  std::string bad_magic = bytes;
  Patch(bad_magic, 0, "GGUX");
  ExpectOpenError(bad_magic, {"not a GGUF file"});

  for (uint32_t version : {0u, 1u, 4u}) {
    std::string patched = bytes;
    Patch(patched, 4, EncodeU32(version));
    ExpectOpenError(patched, {"unsupported GGUF version " + std::to_string(version)});
  }
  std::string big_endian = bytes;
  Patch(big_endian, 4, std::string("\0\0\0\3", 4));
  ExpectOpenError(big_endian, {"unsupported GGUF version", "big-endian"});

  std::string many_tensors = bytes;
  Patch(many_tensors, 8, EncodeU64(1ull << 62));
  ExpectOpenError(many_tensors, {"truncated GGUF file", "tensor infos cannot fit"});
  std::string many_kvs = bytes;
  Patch(many_kvs, 16, EncodeU64(~0ull));
  ExpectOpenError(many_kvs, {"truncated GGUF file", "key/values cannot fit"});

  ExpectOpenError("", {"truncated GGUF file: magic"});
  ExpectOpenError("GGUF\3\0", {"truncated GGUF file: version"});
}

TEST(GgufCorruptionTest, MissingFileAndDirectory) {
  absl::StatusOr<std::unique_ptr<GgufFile>> missing = GgufFile::Open("/nonexistent/x.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(missing.status().message()).find("/nonexistent/x.gguf"), std::string::npos);
  EXPECT_FALSE(GgufFile::Open(::testing::TempDir()).ok());
}

TEST(GgufCorruptionTest, MetadataErrors) {
  {
    GgufTestWriter writer;
    writer.AddRaw("weird.key", 13, EncodeU32(0));
    ExpectOpenError(writer.Build().bytes, {"'weird.key'", "unknown value type 13"});
  }
  {
    GgufTestWriter writer;
    writer.AddRaw("weird.array", 9, EncodeU32(77) + EncodeU64(1) + EncodeU32(0));
    ExpectOpenError(writer.Build().bytes, {"'weird.array'", "unknown value type 77"});
  }
  for (uint64_t count : {~0ull, 1ull << 60, 1000000ull}) {
    // An array claiming more elements than the file could hold: rejected before allocating.
    GgufTestWriter writer;
    writer.AddRaw("huge.array", 9,
                  EncodeU32(static_cast<uint32_t>(VT::kUint64)) + EncodeU64(count) + EncodeU64(1));
    ExpectOpenError(writer.Build().bytes, {"'huge.array'", "cannot fit", "truncated GGUF file"});
  }
  {
    GgufTestWriter writer;
    writer.AddRaw(
        "huge.strings", 9,
        EncodeU32(static_cast<uint32_t>(VT::kString)) + EncodeU64(1ull << 61) + EncodeString("x"));
    ExpectOpenError(writer.Build().bytes, {"'huge.strings'", "cannot fit"});
  }
  {
    GgufTestWriter writer;
    writer.AddRaw("long.string", 8, EncodeU64(1ull << 40) + "abc");
    ExpectOpenError(writer.Build().bytes, {"truncated GGUF file", "'long.string'", "past end"});
  }
  {
    GgufTestWriter writer;
    writer.AddRaw("strings", 9,
                  EncodeU32(8) + EncodeU64(2) + EncodeString("ok") + EncodeU64(~0ull) + "zz");
    ExpectOpenError(writer.Build().bytes, {"truncated GGUF file", "'strings'", "element 1"});
  }
  {
    // The key name itself runs past the end of the file.
    std::string bytes =
        "GGUF" + EncodeU32(3) + EncodeU64(0) + EncodeU64(1) + EncodeU64(500) + std::string(20, 'k');
    ExpectOpenError(bytes, {"truncated GGUF file: metadata key 0 name", "past end"});
  }
  {
    GgufTestWriter writer;
    writer.AddRaw("bad.bool", 7, std::string(1, '\x02'));
    ExpectOpenError(writer.Build().bytes, {"'bad.bool'", "bool"});
  }
  {
    GgufTestWriter writer;
    writer.Add("dup", U32(1));
    writer.Add("other", U32(2));
    writer.Add("dup", Str("again"));
    ExpectOpenError(writer.Build().bytes, {"duplicate metadata key 'dup'"});
  }
  {
    // Arrays nested deeper than any real file: an error, not a stack overflow.
    std::string payload;
    for (int i = 0; i < 10000; ++i) payload += EncodeU32(9) + EncodeU64(1);
    payload += EncodeU32(0) + EncodeU64(0);
    GgufTestWriter writer;
    writer.AddRaw("deep", 9, payload);
    ExpectOpenError(writer.Build().bytes, {"'deep'", "deeper"});
  }
}

TEST(GgufCorruptionTest, TensorInfoErrors) {
  const auto with_tensor = [](TestTensor tensor) {
    GgufTestWriter writer;
    writer.Add("k", U32(1));
    writer.AddTensor({"ok.tensor", {4}, 0, std::string(16, '\0')});
    writer.AddTensor(std::move(tensor));
    return writer.Build().bytes;
  };
  ExpectOpenError(with_tensor({"zero.dims", {}, 0, ""}), {"'zero.dims'", "0 dimensions"});
  ExpectOpenError(with_tensor({"five.dims", {1, 1, 1, 1, 1}, 0, "xxxx"}),
                  {"'five.dims'", "5 dimensions"});
  ExpectOpenError(with_tensor({"zero.size", {4, 0}, 0, ""}), {"'zero.size'", "dimension 1"});
  ExpectOpenError(with_tensor({"negative", {-4}, 0, ""}), {"'negative'", "dimension 0"});
  ExpectOpenError(with_tensor({"elem.overflow", {1ll << 32, 1ll << 32}, 0, ""}),
                  {"'elem.overflow'", "overflow"});
  ExpectOpenError(with_tensor({"byte.overflow", {1ll << 31, 1ll << 31}, 0, ""}),
                  {"'byte.overflow'", "overflow"});
  for (uint32_t type : {4u, 5u, 31u, 0xffffffffu}) {
    ExpectOpenError(with_tensor({"bad.type", {4}, type, std::string(16, '\0')}),
                    {"'bad.type'", "unknown ggml tensor type " + std::to_string(type)});
  }
  ExpectOpenError(with_tensor({"partial.block", {16, 2}, 8, std::string(68, '\0')}),
                  {"'partial.block'", "block size 32"});
  ExpectOpenError(with_tensor({"ok.tensor", {4}, 0, std::string(16, '\0')}),
                  {"duplicate tensor name 'ok.tensor'"});
  ExpectOpenError(with_tensor({"odd.offset", {4}, 0, std::string(16, '\0'), 40}),
                  {"'odd.offset'", "alignment 32"});
  ExpectOpenError(with_tensor({"far.away", {4}, 0, std::string(16, '\0'), 1ull << 40}),
                  {"truncated GGUF file", "'far.away'", "past end of file"});
  ExpectOpenError(with_tensor({"very.far", {4}, 0, std::string(16, '\0'), ~0ull - 31}),
                  {"'very.far'", "past end of file"});

  // The last tensor's data cut short by one byte.
  std::string cut = with_tensor({"cut.short", {8}, 0, std::string(32, '\x05')});
  cut.pop_back();
  ExpectOpenError(cut, {"truncated GGUF file: tensor 'cut.short' data"});

  // Truncation inside a tensor's dims names the tensor info.
  GgufTestWriter writer;
  writer.AddTensor({"a", {4}, 0, std::string(16, '\0')});
  writer.AddTensor({"blk.0.attn_q.weight", {4, 4}, 0, std::string(64, '\0')});
  const BuiltGguf built = writer.Build();
  const size_t dims_at = built.tensor_info_offsets[1] + 8 + 19 + 4;
  ExpectOpenError(
      built.bytes.substr(0, dims_at + 12),
      {"truncated GGUF file: tensor info 1 ('blk.0.attn_q.weight') dims", "past end of file"});
}

TEST(GgufCorruptionTest, TruncationAtEveryOffsetIsAnError) {
  const std::string bytes = SmallValidFile().bytes;
  ASSERT_TRUE(OpenBytes(bytes).ok());
  for (size_t length = 0; length < bytes.size(); ++length) {
    absl::StatusOr<std::unique_ptr<GgufFile>> file = OpenBytes(bytes.substr(0, length));
    ASSERT_FALSE(file.ok()) << "truncated to " << length << " of " << bytes.size();
    EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss) << file.status();
    EXPECT_NE(std::string(file.status().message()).find("truncated GGUF file"), std::string::npos)
        << file.status();
  }
}

TEST(GgufCorruptionTest, RandomMutationsNeverCrash) {
  const std::string bytes = SmallValidFile().bytes;
  std::mt19937 rng(1234);
  int opened = 0;
  for (int iteration = 0; iteration < 3000; ++iteration) {
    std::string mutated = bytes;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % mutated.size();
      switch (rng() % 4) {
        case 0:  // flip one bit
          mutated[at] = static_cast<char>(mutated[at] ^ (1 << (rng() % 8)));
          break;
        case 1:  // random byte
          mutated[at] = static_cast<char>(rng());
          break;
        case 2:  // a run of 0xff (huge lengths and counts)
          for (size_t i = at; i < std::min(mutated.size(), at + 1 + rng() % 8); ++i) {
            mutated[i] = '\xff';
          }
          break;
        default:  // truncate or extend
          if (rng() % 2) {
            mutated.resize(at);
          } else {
            mutated.append(rng() % 70, static_cast<char>(rng()));
          }
          break;
      }
      if (mutated.empty()) break;
    }
    absl::StatusOr<std::unique_ptr<GgufFile>> file = OpenBytes(mutated);
    if (!file.ok()) continue;
    ++opened;
    // Whatever was accepted must be internally consistent and readable.
    uint64_t checksum = 0;
    for (const GgufTensorInfo& tensor : (*file)->tensors()) {
      ASSERT_GT(tensor.num_bytes, 0);
      ASSERT_NE(tensor.data, nullptr);
      for (int64_t i = 0; i < tensor.num_bytes; ++i) checksum += tensor.data[i];
    }
    for (const auto& [key, value] : (*file)->metadata()) {
      ASSERT_EQ((*file)->FindMetadata(key), &value);
    }
    (void)checksum;
  }
  // Mutations of padding and values leave some files valid; most are rejected.
  EXPECT_GT(opened, 0);
  EXPECT_LT(opened, 3000);
}

TEST(GgufRealModelTest, TinyLlama) {
  const char* shared = std::getenv("KVSERVE_SHARED");
  if (shared == nullptr) GTEST_SKIP() << "KVSERVE_SHARED not set";
  const std::string path = std::string(shared) + "/models/llama-2-tiny-random.gguf";
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const GgufFile& g = **file;
  // Expectations from an independent Python parse of the file (struct.unpack, numpy).
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.metadata().size(), 18u);
  EXPECT_EQ(*g.GetString("general.architecture"), "llama");
  EXPECT_EQ(*g.GetString("general.name"), "LLaMA v2");
  EXPECT_EQ(g.FindMetadata("llama.embedding_length")->type, VT::kUint32);
  EXPECT_EQ(*g.GetInt("llama.embedding_length"), 8);
  EXPECT_EQ(*g.GetInt("llama.feed_forward_length"), 32);
  EXPECT_EQ(*g.GetInt("llama.attention.head_count"), 2);
  EXPECT_EQ(*g.GetInt("llama.context_length"), 4096);
  EXPECT_FLOAT_EQ(static_cast<float>(*g.GetFloat("llama.attention.layer_norm_rms_epsilon")),
                  9.999999747378752e-06f);
  absl::StatusOr<std::vector<std::string>> tokens = g.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  ASSERT_EQ(tokens->size(), 32000u);
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ((*tokens)[3], "<0x00>");
  EXPECT_EQ(g.GetFloatArray("tokenizer.ggml.scores")->size(), 32000u);
  absl::StatusOr<std::vector<int64_t>> token_types = g.GetIntArray("tokenizer.ggml.token_type");
  ASSERT_TRUE(token_types.ok());
  EXPECT_EQ(std::vector<int64_t>(token_types->begin(), token_types->begin() + 5),
            (std::vector<int64_t>{2, 3, 3, 6, 6}));
  EXPECT_EQ(*g.GetInt("tokenizer.ggml.eos_token_id"), 2);

  ASSERT_EQ(g.tensors().size(), 12u);
  EXPECT_EQ(g.tensors()[0].name, "token_embd.weight");
  EXPECT_EQ(g.tensors()[11].name, "output.weight");
  absl::StatusOr<const GgufTensorInfo*> embd = g.GetTensor("token_embd.weight", {8, 32000});
  ASSERT_TRUE(embd.ok()) << embd.status();
  EXPECT_EQ((*embd)->dims[1], 32000);
  EXPECT_EQ((*embd)->type, GgmlType::kF16);
  EXPECT_EQ((*embd)->offset, 0u);
  EXPECT_EQ((*embd)->num_bytes, 512000);
  // Row 1 of the embedding starts with f16 0x285d, 0x2411, 0x248c, 0xa65c.
  const uint8_t* row1 = (*embd)->data + 16;
  EXPECT_EQ(row1[0] | (row1[1] << 8), 0x285d);
  EXPECT_EQ(row1[6] | (row1[7] << 8), 0xa65c);
  const GgufTensorInfo* down = g.FindTensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->dims, (std::vector<int64_t>{32, 8}));
  EXPECT_EQ(down->offset, 513536u);
  const GgufTensorInfo* norm = g.FindTensor("output_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->type, GgmlType::kF32);
  float norm_values[8];
  std::memcpy(norm_values, norm->data, sizeof(norm_values));
  for (float v : norm_values) EXPECT_EQ(v, 1.0f);
  const GgufTensorInfo* output = g.FindTensor("output.weight");
  ASSERT_NE(output, nullptr);
  EXPECT_EQ(output->offset, 514144u);
  // The file's last two f16 values: 0x94c1, 0x1f4e.
  const uint8_t* tail = output->data + output->num_bytes - 4;
  EXPECT_EQ(tail[0] | (tail[1] << 8), 0x94c1);
  EXPECT_EQ(tail[2] | (tail[3] << 8), 0x1f4e);
}

}  // namespace
}  // namespace kvserve::engine
