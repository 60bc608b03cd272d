// Fuzzes the Hugging Face config.json reader: ParseJson, then ModelConfigFromHfConfig (the
// architecture, every size, rope_scaling, the Llama 3 frequency divisors). The input is the
// file's text. Any input must give a config or an error naming the key.
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/json.h"
#include "engine/hf_model.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvserve;
  absl::StatusOr<base::JsonValue> json =
      base::ParseJson(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!json.ok()) return 0;
  absl::StatusOr<engine::ModelConfig> config = engine::ModelConfigFromHfConfig(*json, "fuzz");
  if (!config.ok()) return 0;
  fuzz::FuzzCheck(config->hidden_size > 0 && config->num_layers > 0 && config->num_heads > 0 &&
                      config->num_kv_heads > 0 && config->head_dim > 0 && config->vocab_size > 0,
                  "an accepted config has a size that is not positive");
  fuzz::FuzzCheck(
      config->rope_freq_divisors.empty() ||
          static_cast<int64_t>(config->rope_freq_divisors.size()) * 2 == config->head_dim,
      "an accepted config has rope divisors for another head dimension");
  return 0;
}
