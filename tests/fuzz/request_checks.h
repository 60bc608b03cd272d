// What the request fuzzers (OpenAI bodies, gRPC bytes) check about a request the one validation
// point (server/frontend/request_builder.h) accepted: the rules it promises to enforce, so that
// nothing it lets through can break the engine loop's own invariants. Also the backend both
// fuzzers validate against: the demo model's byte-level vocabulary, a Llama 3.1 chat template
// from the source tree, no engine loop.
//
// Thread-safety: pure; FuzzBackend() is built once.
#ifndef KVSERVE_TESTS_FUZZ_REQUEST_CHECKS_H_
#define KVSERVE_TESTS_FUZZ_REQUEST_CHECKS_H_

#include "server/frontend/request_builder.h"
#include "server/frontend/serving_backend.h"

namespace kvserve::fuzz {

// Aborts unless `built` keeps to the rules: prompt ids inside the vocabulary, at least one
// prompt token, 1 <= max_tokens, prompt + max_tokens within the context and the KV cache, at
// most kMaxStopStrings stop strings, each non-empty, valid UTF-8 and at most kMaxStopStringBytes.
void CheckBuiltRequest(const server::BuiltRequest& built, const server::TextCodec& codec,
                       const server::RequestLimits& limits);

// The backend to validate against (loop is null: nothing is submitted).
const server::ServingBackend& FuzzBackend();

}  // namespace kvserve::fuzz

#endif  // KVSERVE_TESTS_FUZZ_REQUEST_CHECKS_H_
