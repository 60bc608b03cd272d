// `kvserve serve`: loads the model (by default the trained demo model), starts the
// engine loop, and serves gRPC and HTTP (/metrics, /health) until SIGTERM/SIGINT.
//
// Start-up: the gRPC and HTTP servers listen first with health NOT_SERVING / 503 (so
// orchestrators can probe a loading server), then the model loads, then health turns SERVING.
// SIGHUP re-reads the TLS files (--tls-cert, --tls-key, --tls-client-ca) for both ports without
// dropping a connection (server/cli/tls_files.h).
// Shutdown on SIGTERM/SIGINT: health NOT_SERVING / 503, new requests UNAVAILABLE, in-flight
// requests run to completion for up to --drain-timeout seconds, then the servers stop (HTTP
// after the drain, so /metrics stays scrapeable while draining) and the process exits 0.
#include "server/cli/serve_command.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "engine/cpu_features.h"
#include "engine/gguf.h"
#include "engine/llama_model.h"
#include "engine/model_config.h"
#include "engine/quant/isa.h"
#include "engine/tokenizer.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "server/cli/tls_files.h"
#include "server/frontend/metrics.h"
#include "server/grpc/generation_service.h"
#include "server/grpc/grpc_metrics_interceptor.h"
#include "server/http/http_server.h"
#include "server/http/openai_handlers.h"
#include "server/http/ops_routes.h"
#include "server/models/chat_template.h"
#include "server/models/demo_model.h"
#include "server/models/model_source.h"
#include "server/models/text_codec.h"
#include "serving/engine_loop.h"
#include "serving/model_executor.h"
#include "serving/step_delay_executor.h"

// Shared with the offline commands (defined in offline_commands.cc).
ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, weight_dtype);
ABSL_DECLARE_FLAG(bool, offline);

ABSL_FLAG(int32_t, grpc_port, 50051, "gRPC port (0: pick a free one; the log says which)");
ABSL_FLAG(int32_t, http_port, 8080,
          "HTTP port for /metrics, /health (and the HTTP API) (0: pick a free one; the log says "
          "which)");
ABSL_FLAG(int32_t, http_io_threads, 1,
          "Threads of the HTTP event loop (connections and streams have none of their own)");
ABSL_FLAG(int32_t, http_max_connections, 4096,
          "Open HTTP connections at most; past it an idle one is closed, else the new one gets "
          "503 with Retry-After (GET /health and /metrics are answered regardless)");
ABSL_FLAG(std::string, http_max_header_bytes, "16KiB",
          "Largest request line + headers (431 beyond)");
ABSL_FLAG(std::string, http_max_body_bytes, "16MiB", "Largest request body (413 beyond)");
ABSL_FLAG(double, http_header_timeout, 10,
          "Seconds from a connection's start (or a request's first byte) to the end of the "
          "request's headers; a slower client is disconnected");
ABSL_FLAG(double, http_body_timeout, 30, "Seconds to receive a request body after its headers");
ABSL_FLAG(double, http_idle_timeout, 30,
          "Seconds a kept-alive connection may wait for its next request");
ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on (gRPC and HTTP)");
ABSL_DECLARE_FLAG(int32_t, max_num_seqs);  // shared with generate (offline_commands.cc)
ABSL_DECLARE_FLAG(int32_t, max_num_batched_tokens);
ABSL_DECLARE_FLAG(bool, enable_prefix_caching);
ABSL_DECLARE_FLAG(std::string, kv_cache_dtype);
ABSL_FLAG(int32_t, kv_page_size, 16, "Tokens per KV cache page");
ABSL_FLAG(std::string, kv_cache_memory, "auto",
          "KV cache size in bytes (suffixes K, M, G, KiB, MiB, GiB); auto = min(1 GiB, RAM / 4)");
ABSL_FLAG(int32_t, max_queued_requests, 1024,
          "Requests waiting for a batch slot before new ones get RESOURCE_EXHAUSTED");
ABSL_FLAG(double, drain_timeout, 30, "Seconds in-flight requests get to finish on SIGTERM");
ABSL_FLAG(std::string, api_key, "",
          "If set (or env KVSERVE_API_KEY), required as 'Authorization: Bearer KEY' on /v1/* and "
          "as gRPC metadata 'authorization: Bearer KEY' on kvserve.v1.Generation");
ABSL_FLAG(int32_t, debug_step_delay_ms, 0,
          "Testing only: sleep this many milliseconds before every engine step, so that tests "
          "can observe requests running and waiting with a tiny model");

namespace kvserve::server {
namespace {

using base::Log;

int Fail(const absl::Status& s) {
  Log(absl::StrCat("error: ", s.message()));
  return 1;
}

absl::StatusOr<int64_t> ParseBytes(const std::string& flag, const std::string& text) {
  if (text == "auto") {
    const int64_t ram = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
    return std::min<int64_t>(int64_t{1} << 30, ram / 4);
  }
  std::string digits = text;
  int64_t scale = 1;
  const std::string upper = absl::AsciiStrToUpper(text);
  for (const auto& [suffix, factor] :
       std::vector<std::pair<std::string, int64_t>>{{"KIB", 1 << 10},
                                                    {"MIB", 1 << 20},
                                                    {"GIB", 1 << 30},
                                                    {"K", 1000},
                                                    {"M", 1000 * 1000},
                                                    {"G", 1000 * 1000 * 1000}}) {
    if (upper.size() > suffix.size() &&
        upper.compare(upper.size() - suffix.size(), suffix.size(), suffix) == 0) {
      digits = text.substr(0, text.size() - suffix.size());
      scale = factor;
      break;
    }
  }
  double value;
  if (!absl::SimpleAtod(digits, &value) || !(value > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " = '", text, "' is not a positive size (e.g. 512MiB, 2G)"));
  }
  return static_cast<int64_t>(value * static_cast<double>(scale));
}

// The model's chat template, for Chat. A model without one, or with one outside the Jinja
// subset, is still served: Chat then answers FAILED_PRECONDITION saying why.
void LoadChatTemplate(const LoadedModel& loaded, ServingBackend* backend) {
  if (loaded.chat_template_source.has_value()) {
    absl::StatusOr<std::unique_ptr<ChatTemplate>> parsed =
        ChatTemplate::Parse(*loaded.chat_template_source);
    if (parsed.ok()) {
      backend->chat_template = std::move(*parsed);
      backend->tool_call_format = DetectToolCallFormat(*loaded.chat_template_source);
    } else {
      backend->chat_template_error =
          absl::StrCat("the model's chat template is not supported: ", parsed.status().message());
    }
  }
  backend->bos_token = loaded.bos_token;
  backend->eos_token = loaded.eos_token;
  Log(backend->chat_template != nullptr
          ? absl::StrCat("chat template: loaded (Chat is available; tool calls: ",
                         ToolCallFormatName(backend->tool_call_format), ")")
          : absl::StrCat("chat template: none usable (", backend->chat_template_error,
                         "); Chat is unavailable"));
}

// Which built-in model serves, if any: the trained default (no --model) or the generated
// random-weight one (--model demo:random, byte vocabulary).
enum class BuiltinModel { kNone, kDefault, kRandom };

// --model; with none, the trained default model; with demo:random, the random model written
// into the cache.
absl::StatusOr<std::string> ModelPath(BuiltinModel* builtin) {
  const std::string flag = absl::GetFlag(FLAGS_model);
  *builtin = BuiltinModel::kNone;
  if (flag.empty()) {
    *builtin = BuiltinModel::kDefault;
    absl::StatusOr<std::string> found = FindDefaultModel();
    if (!found.ok()) return found.status();
    Log(
        absl::StrCat("no --model given: serving the default model (a small Llama trained on War "
                     "and Peace) from ",
                     *found,
                     "; pass --model FILE.gguf, a Hugging Face folder or hf:OWNER/REPO to serve a "
                     "real model"));
    return found;
  }
  if (flag != kRandomDemoModelRef) return flag;
  *builtin = BuiltinModel::kRandom;
  absl::StatusOr<std::string> written = WriteDemoModel(DemoModelDirectory());
  if (!written.ok()) return written.status();
  Log(absl::StrCat(
      "--model ", kRandomDemoModelRef,
      ": serving the built-in demo model (random weights, byte-level vocabulary) from ", *written,
      "; for tests, its text is noise"));
  return written;
}

// The KV cache flags: --kv-cache-dtype, --kv-cache-memory, --kv-page-size.
struct KvCacheFlags {
  engine::KvDType dtype = engine::KvDType::kF16;
  std::string dtype_name;
  int64_t bytes = 0;
  int32_t page_size = 0;
};

absl::StatusOr<KvCacheFlags> ReadKvCacheFlags() {
  KvCacheFlags kv;
  kv.dtype_name = absl::GetFlag(FLAGS_kv_cache_dtype);
  absl::StatusOr<engine::KvDType> dtype = engine::ParseKvDType(kv.dtype_name);
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--kv-cache-dtype: ", dtype.status().message()));
  }
  kv.dtype = *dtype;
  absl::StatusOr<int64_t> kv_bytes =
      ParseBytes("kv-cache-memory", absl::GetFlag(FLAGS_kv_cache_memory));
  if (!kv_bytes.ok()) return kv_bytes.status();
  kv.bytes = *kv_bytes;
  kv.page_size = absl::GetFlag(FLAGS_kv_page_size);
  if (kv.page_size < 1) return absl::InvalidArgumentError("--kv-page-size must be at least 1");
  return kv;
}

// Loads `path` (weights in `weight_dtype`) and logs what was loaded.
absl::StatusOr<LoadedModel> LoadModel(const std::string& path, engine::WeightDType weight_dtype) {
  ModelSourceOptions options;
  options.weight_dtype = weight_dtype;
  options.offline = absl::GetFlag(FLAGS_offline);
  const absl::Time start = absl::Now();
  absl::StatusOr<LoadedModel> loaded = LoadModelSource(path, options);
  if (!loaded.ok()) return loaded.status();
  const engine::ModelConfig& config = loaded->model->config();
  Log(absl::StrFormat(
      "model %s (%s): %d layers, hidden %d, heads %d/%d, FFN %d, vocab %d, context %d; weights "
      "%s%s; loaded in %.2f s",
      loaded->name, config.architecture, config.num_layers, config.hidden_size, config.num_heads,
      config.num_kv_heads, config.intermediate_size, config.vocab_size, config.context_length,
      engine::WeightDTypeName(weight_dtype),
      config.rope_scaling == "none" ? "" : absl::StrCat("; RoPE scaling ", config.rope_scaling),
      absl::ToDoubleSeconds(absl::Now() - start)));
  for (const std::string& line : engine::ModelConfigNotes(config)) Log(line);
  for (const std::string& line : loaded->model->weight_summary()) {
    Log(absl::StrCat("weights: ", line));
  }
  Log(absl::StrCat("quantized kernels: ", engine::quant::DescribeQuantIsaChoice()));
  return loaded;
}

// The text codec: the random model's bytes, the model's tokenizer, or token ids only.
absl::Status SetCodec(LoadedModel& loaded, bool byte_vocabulary, int64_t model_vocab_size,
                      ServingBackend& backend) {
  if (byte_vocabulary) {
    backend.codec = std::make_unique<ByteLevelCodec>();
  } else {
    // Without a usable tokenizer the model is served on token ids, with EOS/BOS from the
    // metadata.
    if (loaded.tokenizer == nullptr) {
      Log(absl::StrCat("no usable tokenizer (", loaded.tokenizer_status.message(),
                       "): serving token ids only"));
    }
    backend.codec = loaded.TakeCodec(static_cast<int32_t>(model_vocab_size));
  }
  Log(absl::StrCat("vocabulary: ", backend.codec->name()));
  // Hugging Face checkpoints often pad the embedding past the tokenizer's last id (Qwen2: 151936
  // rows, 151665 tokens); ids the tokenizer cannot produce are simply never sent.
  if (backend.codec->vocab_size() > model_vocab_size) {
    return absl::FailedPreconditionError(
        absl::StrCat("the model has ", model_vocab_size, " tokens but its vocabulary (",
                     backend.codec->name(), ") has ", backend.codec->vocab_size()));
  }
  return absl::OkStatus();
}

// The executor over `model` with `num_pages` KV pages, and the engine loop that runs it.
absl::StatusOr<std::unique_ptr<serving::EngineLoop>> StartEngineLoop(
    std::unique_ptr<engine::LlamaModel> model, const KvCacheFlags& kv, int32_t num_pages,
    Metrics& metrics) {
  const int64_t context_length = model->config().context_length;
  absl::StatusOr<std::unique_ptr<serving::ModelExecutor>> executor =
      serving::ModelExecutor::Create(std::move(model), kv.page_size, num_pages, kv.dtype);
  if (!executor.ok()) return executor.status();

  serving::EngineLoopConfig loop_config;
  loop_config.scheduler.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  loop_config.scheduler.max_num_batched_tokens = absl::GetFlag(FLAGS_max_num_batched_tokens);
  loop_config.scheduler.enable_prefix_caching = absl::GetFlag(FLAGS_enable_prefix_caching);
  loop_config.scheduler.max_model_len = static_cast<int32_t>(context_length);
  loop_config.max_queued_requests = absl::GetFlag(FLAGS_max_queued_requests);
  loop_config.observer = &metrics;
  std::unique_ptr<serving::StepExecutor> step_executor = std::move(*executor);
  if (const int32_t delay_ms = absl::GetFlag(FLAGS_debug_step_delay_ms); delay_ms > 0) {
    Log(absl::StrCat("debug: every engine step sleeps ", delay_ms, " ms first"));
    step_executor = std::make_unique<serving::StepDelayExecutor>(std::move(step_executor),
                                                                 absl::Milliseconds(delay_ms));
  }
  absl::StatusOr<std::unique_ptr<serving::EngineLoop>> loop =
      serving::EngineLoop::Create(std::move(step_executor), loop_config);
  if (!loop.ok()) return loop.status();
  Log(absl::StrFormat("scheduler: max %d running, %d tokens per step, %d queued",
                      loop_config.scheduler.max_num_seqs,
                      loop_config.scheduler.max_num_batched_tokens,
                      loop_config.max_queued_requests));
  return loop;
}

// What GetModelInfo and /v1/models report.
ModelDescription DescribeModel(const LoadedModel& loaded, const engine::ModelConfig& config,
                               const ServingBackend& backend, engine::WeightDType weight_dtype,
                               const KvCacheFlags& kv, bool demo) {
  ModelDescription info;
  info.name = loaded.name;
  info.architecture = config.architecture;
  info.context_length = backend.limits.context_length;
  info.vocab_size = static_cast<int32_t>(config.vocab_size);
  for (int32_t id : backend.codec->eos_ids()) info.eos_token_ids.push_back(id);
  std::sort(info.eos_token_ids.begin(), info.eos_token_ids.end());
  info.weight_dtype = std::string(engine::WeightDTypeName(weight_dtype));
  info.kv_cache_dtype = kv.dtype_name;
  info.bos_token_id = backend.codec->bos_id();
  info.kv_page_size = kv.page_size;
  info.demo = demo;
  return info;
}

// Loads the model and starts the engine loop, which reports to `metrics`.
absl::StatusOr<std::shared_ptr<ServingBackend>> LoadBackend(Metrics& metrics) {
  BuiltinModel builtin = BuiltinModel::kNone;
  absl::StatusOr<std::string> path = ModelPath(&builtin);
  const bool demo = builtin != BuiltinModel::kNone;
  if (!path.ok()) return path.status();
  absl::StatusOr<engine::WeightDType> weight_dtype =
      engine::ParseWeightDType(absl::GetFlag(FLAGS_weight_dtype));
  if (!weight_dtype.ok()) return weight_dtype.status();
  absl::StatusOr<KvCacheFlags> kv = ReadKvCacheFlags();
  if (!kv.ok()) return kv.status();
  absl::StatusOr<LoadedModel> loaded = LoadModel(*path, *weight_dtype);
  if (!loaded.ok()) return loaded.status();
  const engine::ModelConfig config = loaded->model->config();

  auto backend = std::make_shared<ServingBackend>();
  LoadChatTemplate(*loaded, backend.get());
  if (absl::Status s =
          SetCodec(*loaded, builtin == BuiltinModel::kRandom, config.vocab_size, *backend);
      !s.ok()) {
    return s;
  }
  // Structured output: the vocabulary's trie is built on the first constrained request.
  const TextCodec* codec = backend->codec.get();
  backend->constraints = std::make_shared<constrain::ConstraintCompiler>(
      static_cast<int32_t>(config.vocab_size),
      [codec](int32_t id) { return codec->TokenPiece(id); });
  const int32_t num_pages =
      serving::ModelExecutor::PagesForBytes(*loaded->model, kv->page_size, kv->dtype, kv->bytes);
  if (num_pages < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv-cache-memory = ", kv->bytes, " bytes holds no KV page"));
  }
  const size_t page_bytes =
      engine::KvPagePool::PageBytes(loaded->model->KvShape(kv->page_size, 1, kv->dtype));
  Log(absl::StrFormat(
      "KV cache: %d pages of %d tokens (%d tokens, %.1f MiB requested), %s, %d bytes per token",
      num_pages, kv->page_size, int64_t{num_pages} * kv->page_size,
      static_cast<double>(kv->bytes) / (1 << 20), kv->dtype_name,
      static_cast<int64_t>(page_bytes / kv->page_size)));
  absl::StatusOr<std::unique_ptr<serving::EngineLoop>> loop =
      StartEngineLoop(std::move(loaded->model), *kv, num_pages, metrics);
  if (!loop.ok()) return loop.status();
  backend->loop = *std::move(loop);
  backend->limits.context_length = backend->loop->scheduler_config().max_model_len;
  backend->limits.kv_capacity_tokens = int64_t{num_pages} * kv->page_size;
  backend->model_info = DescribeModel(*loaded, config, *backend, *weight_dtype, *kv, demo);
  metrics.SetModelInfo(config.name, config.architecture,
                       std::string(engine::WeightDTypeName(*weight_dtype)), kv->dtype_name);
  return backend;
}

// The HTTP server's options from the --http-* flags.
absl::StatusOr<HttpServer::Options> HttpOptions() {
  HttpServer::Options options;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_http_port);
  options.io_threads = absl::GetFlag(FLAGS_http_io_threads);
  options.max_connections = absl::GetFlag(FLAGS_http_max_connections);
  if (options.io_threads < 1 || options.max_connections < 1) {
    return absl::InvalidArgumentError(
        "--http-io-threads and --http-max-connections must be at least 1");
  }
  absl::StatusOr<int64_t> header_bytes =
      ParseBytes("http-max-header-bytes", absl::GetFlag(FLAGS_http_max_header_bytes));
  if (!header_bytes.ok()) return header_bytes.status();
  absl::StatusOr<int64_t> body_bytes =
      ParseBytes("http-max-body-bytes", absl::GetFlag(FLAGS_http_max_body_bytes));
  if (!body_bytes.ok()) return body_bytes.status();
  options.max_header_bytes = static_cast<size_t>(*header_bytes);
  options.max_body_bytes = static_cast<size_t>(*body_bytes);
  const double header_timeout = absl::GetFlag(FLAGS_http_header_timeout);
  const double body_timeout = absl::GetFlag(FLAGS_http_body_timeout);
  const double idle_timeout = absl::GetFlag(FLAGS_http_idle_timeout);
  if (!(header_timeout > 0) || !(body_timeout > 0) || !(idle_timeout > 0)) {
    return absl::InvalidArgumentError("the --http-*-timeout flags must be positive seconds");
  }
  options.header_timeout = absl::Seconds(header_timeout);
  options.body_timeout = absl::Seconds(body_timeout);
  options.idle_timeout = absl::Seconds(idle_timeout);
  return options;
}

// Every connection and stream is a file descriptor: take the hard limit (a container's is
// often 1048576, its soft one 1024).
void RaiseFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

// SIGHUP: the TLS files again, for both ports. A file that does not load keeps the identity in
// use (and says why).
void ReloadTls(HttpServer& http, GrpcTlsIdentity* grpc_tls) {
  if (grpc_tls == nullptr) {
    Log("SIGHUP: TLS is off (no --tls-cert); nothing to reload");
    return;
  }
  absl::StatusOr<std::optional<TlsPem>> pem = ReadServerTls();
  absl::Status status = pem.ok() ? http.ReloadTls(**pem) : pem.status();
  if (status.ok()) status = grpc_tls->Update(**pem);
  Log(status.ok() ? std::string("SIGHUP: TLS certificates reloaded (HTTP now, gRPC within 1 s)")
                  : absl::StrCat("SIGHUP: TLS reload failed, keeping the current certificates: ",
                                 status.message()));
}

void SetHealth(grpc::Server& server, bool serving) {
  grpc::HealthCheckServiceInterface* health = server.GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  health->SetServingStatus("kvserve.v1.Generation", serving);
}

}  // namespace

int RunServe(const std::vector<char*>& positional) {
  if (!positional.empty()) {
    return Fail(
        absl::InvalidArgumentError(absl::StrCat("unexpected argument '", positional[0], "'")));
  }
  // Block the shutdown signals before any thread starts (gRPC, OpenMP, the engine loop inherit
  // the mask); this thread takes them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  RaiseFileLimit();

  const double drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  if (!(drain_timeout >= 0))
    return Fail(absl::InvalidArgumentError("--drain-timeout must be >= 0"));

  // Declared first: outlives the engine loop (which reports to it) and both servers.
  Metrics metrics;
  std::atomic<ServingState> state{ServingState::kLoading};

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::string api_key = absl::GetFlag(FLAGS_api_key);
  if (api_key.empty()) {
    if (const char* env = std::getenv("KVSERVE_API_KEY"); env != nullptr) api_key = env;
  }
  GenerationService service(api_key);
  OpenAiFrontend openai_frontend(api_key);
  grpc::ServerBuilder builder;
  {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(NewGrpcMetricsInterceptorFactory(&metrics));
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  absl::StatusOr<std::optional<TlsPem>> tls = ReadServerTls();
  if (!tls.ok()) return Fail(tls.status());
  absl::StatusOr<HttpServer::Options> http_options = HttpOptions();
  if (!http_options.ok()) return Fail(http_options.status());
  std::unique_ptr<GrpcTlsIdentity> grpc_tls;
  if (tls->has_value()) {
    absl::StatusOr<std::unique_ptr<GrpcTlsIdentity>> identity = GrpcTlsIdentity::Create(**tls);
    if (!identity.ok()) return Fail(identity.status());
    grpc_tls = *std::move(identity);
    http_options->tls = **tls;
  }
  const std::string address =
      absl::StrCat(absl::GetFlag(FLAGS_host), ":", absl::GetFlag(FLAGS_grpc_port));
  int port = 0;
  // gRPC's default SO_REUSEPORT would let a second server share a busy port (and half its
  // traffic); without it a busy port is an error, as on the HTTP side.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(
      address, grpc_tls != nullptr ? grpc_tls->credentials() : grpc::InsecureServerCredentials(),
      &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return Fail(absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on ", address, " (is the port in use?)")));
  }
  SetHealth(*server, false);
  const char* scheme = grpc_tls == nullptr              ? ""
                       : tls->value().client_ca.empty() ? " with TLS"
                                                        : " with mutual TLS";
  Log(absl::StrFormat("gRPC listening on %s:%d%s (health NOT_SERVING while the model loads)",
                      absl::GetFlag(FLAGS_host), port, scheme));
  // Routes are registered before Start(); handlers that need the model wait for `state`.
  HttpServer http;
  AddHealthAndMetricsRoutes(http, state, metrics);
  openai_frontend.Register(http);
  http_options->on_response = [&metrics](const std::string& path, int status) {
    metrics.CountHttpResponse(path, status);
  };
  if (absl::Status started = http.Start(*http_options); !started.ok()) {
    server->Shutdown(absl::ToChronoTime(absl::Now()));
    return Fail(started);
  }
  Log(absl::StrFormat(
      "HTTP listening on %s:%d%s (GET /metrics, GET /health: 503 while loading; at most %d "
      "connections)",
      http_options->host, http.port(), scheme, http_options->max_connections));

  absl::StatusOr<std::shared_ptr<ServingBackend>> backend = LoadBackend(metrics);
  if (!backend.ok()) {
    http.Stop();
    server->Shutdown(absl::ToChronoTime(absl::Now()));
    return Fail(backend.status());
  }
  const serving::EngineLoop* loop_for_metrics = (*backend)->loop.get();
  metrics.SetLoadSource([loop_for_metrics] { return loop_for_metrics->Load(); });
  service.SetBackend(*backend);
  openai_frontend.SetBackend(*backend);
  SetHealth(*server, true);
  state = ServingState::kServing;
  Log(absl::StrFormat("ready: serving kvserve.v1.Generation on %s:%d", absl::GetFlag(FLAGS_host),
                      port));

  int signal_number = 0;
  while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) {
    ReloadTls(http, grpc_tls.get());
  }
  // All of it before the log line, which tests (and operators) take as the drain's start: the
  // health check and new requests must already say so when it appears.
  state = ServingState::kDraining;
  SetHealth(*server, false);
  service.SetDraining();
  serving::EngineLoop& loop = *(*backend)->loop;
  loop.StopAccepting();
  Log(absl::StrFormat("%s: draining (health NOT_SERVING, new requests UNAVAILABLE, up to %g s)",
                      signal_number == SIGTERM ? "SIGTERM" : "SIGINT", drain_timeout));
  const absl::Time deadline = absl::Now() + absl::Seconds(drain_timeout);
  const bool idle = loop.WaitIdle(deadline);
  if (!idle) Log("drain timeout: aborting the requests still running");
  // The engine side is done; give the streams a moment to write their last messages.
  loop.Shutdown();
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(idle ? 5 : 1)));
  server->Wait();
  http.Stop();
  metrics.SetLoadSource(nullptr);
  Log("stopped");
  return 0;
}

}  // namespace kvserve::server
