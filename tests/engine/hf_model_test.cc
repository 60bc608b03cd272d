// JSON reader, safetensors header validation and config.json parsing. Expected values are
// written by hand in the tests (byte layouts assembled here, not by the code under test).
#include "engine/hf_model.h"

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/json.h"
#include "engine/safetensors.h"
#include "gtest/gtest.h"

namespace kvserve::engine {

using base::JsonValue;
using base::ParseJson;

namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_" + name))
      .string();
}

// Writes `header` (JSON) with its 8-byte little-endian length, then `data`.
std::string WriteSafetensors(const std::string& name, const std::string& header,
                             const std::string& data, int64_t claimed_len = -1) {
  const std::string path = TempPath(name);
  std::ofstream out(path, std::ios::binary);
  uint64_t len = claimed_len >= 0 ? claimed_len : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xFF));
  out << header << data;
  return path;
}

TEST(JsonTest, ParsesNestedValues) {
  absl::StatusOr<JsonValue> v =
      ParseJson(R"({"a": [1, -2.5e1, true, null], "s": "x\u00e9\n", "big": 9007199254740993})");
  ASSERT_TRUE(v.ok()) << v.status();
  const JsonValue* a = v->Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->array.size(), 4u);
  EXPECT_TRUE(a->array[0].is_integer);
  EXPECT_EQ(a->array[0].integer, 1);
  EXPECT_DOUBLE_EQ(a->array[1].number, -25.0);
  EXPECT_FALSE(a->array[1].is_integer);
  EXPECT_TRUE(a->array[2].boolean);
  EXPECT_EQ(a->array[3].type, JsonValue::Type::kNull);
  EXPECT_EQ(v->Find("s")->string, "x\xC3\xA9\n");
  EXPECT_EQ(v->Find("big")->integer, 9007199254740993LL);  // exact beyond 2^53
}

TEST(JsonTest, RejectsMalformedText) {
  for (const char* bad : {"", "{", "{\"a\" 1}", "[1,]", "\"abc", "tru", "{} x", "[01x]"}) {
    EXPECT_FALSE(ParseJson(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseJson(std::string(100, '[') + std::string(100, ']')).ok());  // too deep
}

TEST(SafetensorsTest, ReadsTensors) {
  float values[6] = {1, 2, 3, 4, 5, 6};
  const std::string path = WriteSafetensors(
      "ok.safetensors",
      R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, "__metadata__": {}})",
      std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const SafetensorsTensor* t = (*f)->Find("w");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t->num_elements, 6);
  float got[6];
  std::memcpy(got, t->data, sizeof(got));
  EXPECT_EQ(got[5], 6.0f);
  std::filesystem::remove(path);
}

TEST(SafetensorsTest, NamesEveryMalformation) {
  struct Case {
    const char* name;
    std::string header;
    std::string data;
    int64_t claimed_len;
    const char* expected;
  } cases[] = {
      {"len_past_end", "{}", "", 100, "truncated"},
      {"bad_json", "{\"w\": ", "", -1, "malformed header"},
      {"no_dtype", R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", "abcd", -1, "dtype"},
      {"unknown_dtype", R"({"w": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}})", "abcd",
       -1, "unknown dtype 'Q9'"},
      {"past_end", R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", "abcd", -1,
       "outside"},
      {"size_mismatch", R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", "abcd",
       -1, "needs 8"},
  };
  for (const Case& c : cases) {
    const std::string path = WriteSafetensors(c.name, c.header, c.data, c.claimed_len);
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> f = SafetensorsFile::Open(path);
    ASSERT_FALSE(f.ok()) << c.name;
    EXPECT_NE(f.status().message().find(c.expected), std::string::npos)
        << c.name << ": " << f.status();
    if (c.claimed_len < 0 && std::string(c.name) != "bad_json") {
      EXPECT_NE(f.status().message().find("tensor 'w'"), std::string::npos) << c.name;
    }
    std::filesystem::remove(path);
  }
  const std::string tiny = TempPath("tiny.safetensors");
  std::ofstream(tiny, std::ios::binary) << "abc";
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> f = SafetensorsFile::Open(tiny);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("shorter than the 8-byte header length"), std::string::npos);
  std::filesystem::remove(tiny);
}

TEST(HfConfigTest, ReadsQwen2Config) {
  absl::StatusOr<JsonValue> json = ParseJson(R"({
    "architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "num_hidden_layers": 3,
    "num_attention_heads": 8, "num_key_value_heads": 2, "intermediate_size": 96,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 4096,
    "vocab_size": 500, "tie_word_embeddings": true, "rope_scaling": null})");
  ASSERT_TRUE(json.ok());
  absl::StatusOr<ModelConfig> c = ModelConfigFromHfConfig(*json, "q");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "qwen2");
  EXPECT_TRUE(c->qkv_bias);
  EXPECT_TRUE(c->tied_embeddings);
  EXPECT_EQ(c->rope_style, RopeStyle::kHalves);
  EXPECT_EQ(c->head_dim, 8);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->context_length, 4096);
  EXPECT_FLOAT_EQ(c->rope_base, 1e6f);
  EXPECT_FLOAT_EQ(c->rms_norm_eps, 1e-6f);
}

// Mistral's sliding_window is recorded (and logged by the commands), never applied; Qwen2's
// comes with use_sliding_window false, which is no window; null is none.
TEST(HfConfigTest, SlidingWindowIsRecordedUnlessSwitchedOff) {
  const auto window = [](const std::string& extra) -> int64_t {
    absl::StatusOr<JsonValue> json = ParseJson(absl::StrCat(R"({
      "architectures": ["MistralForCausalLM"], "hidden_size": 64, "num_hidden_layers": 1,
      "num_attention_heads": 4, "intermediate_size": 96, "max_position_embeddings": 256,
      "vocab_size": 10)",
                                                            extra, "}"));
    EXPECT_TRUE(json.ok());
    absl::StatusOr<ModelConfig> c = ModelConfigFromHfConfig(*json, "m");
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->declared_sliding_window : -1;
  };
  EXPECT_EQ(window(""), 0);
  EXPECT_EQ(window(R"(, "sliding_window": null)"), 0);
  EXPECT_EQ(window(R"(, "sliding_window": 4096)"), 4096);
  EXPECT_EQ(window(R"(, "sliding_window": 4096, "use_sliding_window": false)"), 0);
  absl::StatusOr<ModelConfig> c = [] {
    absl::StatusOr<JsonValue> json = ParseJson(R"({"architectures": ["MistralForCausalLM"],
      "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
      "intermediate_size": 96, "max_position_embeddings": 256, "vocab_size": 10,
      "sliding_window": 4096})");
    return ModelConfigFromHfConfig(*json, "m");
  }();
  ASSERT_TRUE(c.ok());
  const std::vector<std::string> notes = ModelConfigNotes(*c);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("sliding attention window of 4096 tokens; not applied"),
            std::string::npos)
      << notes[0];
}

TEST(HfConfigTest, RopeScalingBecomesFrequencyDivisors) {
  const auto config = [](const std::string& scaling) {
    absl::StatusOr<JsonValue> json = ParseJson(absl::StrCat(R"({
      "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 1,
      "num_attention_heads": 4, "intermediate_size": 96, "rope_theta": 10000.0,
      "max_position_embeddings": 256, "vocab_size": 10, "rope_scaling": )",
                                                            scaling, "}"));
    EXPECT_TRUE(json.ok());
    return ModelConfigFromHfConfig(*json, "x");
  };
  // head_dim 16, theta 10000: wavelengths 2*pi*10000^(2i/16) are 6.3, 19.9, 62.8, 198.7, ...
  // With L = 64, low 1, high 4: i = 0 keeps its frequency (6.3 < 16), i >= 3 is divided by 8
  // (> 64), i = 1 and 2 are interpolated: s = (64 / w - 1) / 3, divisor 1 / ((1 - s) / 8 + s).
  absl::StatusOr<ModelConfig> c = config(R"({"rope_type": "llama3", "factor": 8.0,
      "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64})");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->rope_freq_divisors.size(), 8u);
  EXPECT_EQ(c->rope_scaling, "llama3");
  EXPECT_FLOAT_EQ(c->rope_freq_divisors[0], 1.0f);
  for (int i : {1, 2}) {
    const double w = 2 * M_PI * std::pow(10000.0, 2.0 * i / 16);
    const double smooth = (64 / w - 1) / 3;
    EXPECT_NEAR(c->rope_freq_divisors[i], 1 / ((1 - smooth) / 8 + smooth), 1e-5) << i;
  }
  for (int i = 3; i < 8; ++i) EXPECT_FLOAT_EQ(c->rope_freq_divisors[i], 8.0f) << i;

  c = config(R"({"type": "linear", "factor": 2.0})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_freq_divisors, std::vector<float>(8, 2.0f));
  c = config(R"({"rope_type": "default"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->rope_freq_divisors.empty());

  c = config(R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
      "original_max_position_embeddings": 64})");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("'high_freq_factor'"), std::string::npos) << c.status();
  c = config(R"({"rope_type": "yarn", "factor": 4.0})");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("'yarn'"), std::string::npos) << c.status();
}

TEST(HfConfigTest, NamesProblems) {
  auto error_of = [](const char* text) {
    absl::StatusOr<JsonValue> json = ParseJson(text);
    EXPECT_TRUE(json.ok());
    absl::StatusOr<ModelConfig> c = ModelConfigFromHfConfig(*json, "x");
    return c.ok() ? std::string("ok") : std::string(c.status().message());
  };
  EXPECT_NE(error_of(R"({"architectures": ["GPT2LMHeadModel"]})").find("'GPT2LMHeadModel'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 5})")
                .find("missing key 'hidden_size'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 5,
      "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 6,
      "intermediate_size": 8, "max_position_embeddings": 8})")
                .find("does not divide hidden_size"),
            std::string::npos);
  // Found by hf_config_fuzzer: a 24-billion head dimension with linear RoPE scaling asked for
  // a 12-billion-entry divisor table (out of memory) before anything was checked.
  EXPECT_NE(error_of(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 5,
      "hidden_size": 24555555558, "num_hidden_layers": 1, "num_attention_heads": 1,
      "intermediate_size": 8, "max_position_embeddings": 8,
      "rope_scaling": {"type": "linear", "factor": 2.0}})")
                .find("head dimension 24555555558 is above 4096"),
            std::string::npos);
}

}  // namespace
}  // namespace kvserve::engine
