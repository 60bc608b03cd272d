// The built-in models.
//
// The default model, what `kvserve serve` runs when no --model is given, so the server works
// offline on a fresh machine and writes words: models/kvserve-demo.gguf in the source tree, a
// 5.8M-parameter Llama trained on War and Peace by scripts/train_demo_model.py (Q8_0, its own
// 4096-token byte-level BPE, context 256; docs/DEMO_MODEL.md). FindDefaultModel locates it.
//
// The random model (`--model demo:random`), what the server tests run: a small Llama (hidden
// 256, 4 layers, 8 heads / 4 KV heads, FFN 512, context 2048) with random weights drawn
// deterministically from a fixed seed, and a byte-level vocabulary (ByteLevelCodec: 256 byte
// tokens, BOS, EOS) so any text round-trips and token counts are byte counts. Its output is
// gibberish, mostly printable ASCII: the LM-head rows of printable bytes are larger than the
// others, so they usually win. It is generated, not shipped: WriteDemoModel writes it.
//
// Thread-safety: WriteDemoModel may run in several processes at once (the file is written under
// a temporary name and renamed).
#ifndef KVSERVE_SERVER_MODELS_DEMO_MODEL_H_
#define KVSERVE_SERVER_MODELS_DEMO_MODEL_H_

#include <string>

#include "absl/status/statusor.h"

namespace kvserve::server {

// general.name of the random model (the trained one's is "kvserve-demo").
inline constexpr char kDemoModelName[] = "kvserve-demo-random";
// The --model value that selects the random model.
inline constexpr char kRandomDemoModelRef[] = "demo:random";
// The trained default model's file name.
inline constexpr char kDefaultModelFile[] = "kvserve-demo.gguf";

// The trained default model's path: $KVSERVE_DEFAULT_MODEL if set; else
// <prefix>/share/kvserve/kvserve-demo.gguf where the running binary is <prefix>/bin/kvserve (the
// container); else the source tree's models/ (compiled in: a build runs from its checkout).
// NotFound names every place tried.
absl::StatusOr<std::string> FindDefaultModel();

// Directory for the file: $KVSERVE_CACHE if set, else $TMPDIR, else /tmp.
std::string DemoModelDirectory();

// Writes the random model into `directory` unless a complete copy is already there (it is the
// same every time), and returns its path.
absl::StatusOr<std::string> WriteDemoModel(const std::string& directory);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_MODELS_DEMO_MODEL_H_
