"""kvserve.Client: the kvserve.v1.Generation service over a blocking gRPC channel.

    client = kvserve.Client("localhost:50051")
    for delta in client.generate("Prince Andrew", max_tokens=32):
        print(delta.text, end="", flush=True)

Every call takes `timeout` (seconds, None = no deadline). Errors from the server raise
kvserve.KvserveError with the gRPC status code name (e.g. "INVALID_ARGUMENT") and its message.
Thread-safety: a Client may be shared by threads (gRPC channels are); close() it, or use it as a
context manager, to release the connection.
"""
import dataclasses
import json
from typing import Dict, Iterator, List, Optional, Sequence

from kvserve import _grpc_import

grpc = _grpc_import.require()

from kvserve.v1 import generation_pb2 as pb  # noqa: E402
from kvserve.v1 import generation_pb2_grpc as pb_grpc  # noqa: E402


class KvserveError(Exception):
    """A failed call: `code` is the gRPC status name, `details` the server's message."""

    def __init__(self, code: str, details: str):
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


@dataclasses.dataclass
class Delta:
    """One streamed piece of a generation.

    `text` is new text (may be empty while a character's bytes are incomplete), `token_ids` the
    tokens it came from. The last delta has `finish_reason` ("stop", "stop_string", "length",
    "context_length", "cancelled"), `usage` {prompt_tokens, completion_tokens,
    cached_prompt_tokens} and `timings` {queue_seconds, time_to_first_token_seconds,
    total_seconds}; earlier ones have None there."""
    text: str
    token_ids: List[int]
    finish_reason: Optional[str] = None
    matched_stop: str = ""
    usage: Optional[Dict[str, int]] = None
    timings: Optional[Dict[str, float]] = None
    logprobs: list = dataclasses.field(default_factory=list)  # pb.Logprobs messages


def message_to_dict(message) -> dict:
    """The message's fields by name (repeated fields as lists); no protobuf version quirks."""
    out = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.label == field.LABEL_REPEATED:
            value = list(value)
        elif field.message_type is not None:
            value = message_to_dict(value)
        out[field.name] = value
    return out


def to_delta(response) -> Delta:
    delta = Delta(text=response.text, token_ids=list(response.token_ids),
                  logprobs=list(response.logprobs))
    if response.finish_reason != pb.FINISH_REASON_UNSPECIFIED:
        delta.finish_reason = pb.FinishReason.Name(response.finish_reason).removeprefix(
            "FINISH_REASON_").lower()
        delta.matched_stop = response.matched_stop
        delta.usage = message_to_dict(response.usage)
        delta.timings = message_to_dict(response.timings)
    return delta


def build_generate_request(prompt=None, *, prompt_token_ids=None, max_tokens=None,
                           temperature=None, top_k=None, top_p=None, min_p=None, seed=None,
                           stop: Sequence[str] = (), stop_token_ids: Sequence[int] = (),
                           ignore_eos=None, logprobs=None, add_special_tokens=None,
                           request_id="", json_schema=None, json_object=None, regex=None,
                           grammar=None, choices=None) -> "pb.GenerateRequest":
    """A GenerateRequest; arguments left None keep the server's defaults. With neither prompt
    nor prompt_token_ids the input is left unset (Chat's messages are the prompt).

    Structured output, at most one of: json_schema (a dict, or its JSON text), json_object=True
    (any JSON object), regex, grammar (GBNF), choices (a list of strings)."""
    if prompt is not None and prompt_token_ids is not None:
        raise ValueError("give prompt or prompt_token_ids, not both")
    constraints = [(k, v) for k, v in (("json_schema", json_schema), ("json_object", json_object),
                                       ("regex", regex), ("grammar", grammar),
                                       ("choices", choices)) if v is not None]
    if len(constraints) > 1:
        raise ValueError("give at most one of json_schema, json_object, regex, grammar, choices")
    request = pb.GenerateRequest(request_id=request_id, stop=list(stop),
                                 stop_token_ids=list(stop_token_ids))
    if prompt is not None:
        request.prompt = prompt
    elif prompt_token_ids is not None:
        request.prompt_token_ids.ids.extend(prompt_token_ids)
    for name, value in (("max_tokens", max_tokens), ("ignore_eos", ignore_eos),
                        ("logprobs", logprobs), ("add_special_tokens", add_special_tokens)):
        if value is not None:
            setattr(request, name, value)
    for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p),
                        ("min_p", min_p), ("seed", seed)):
        if value is not None:
            setattr(request.sampling, name, value)
    for name, value in constraints:
        if name == "json_schema":
            request.constraint.json_schema = (value if isinstance(value, str)
                                              else json.dumps(value))
        elif name == "choices":
            request.constraint.choice.choices.extend(value)
        else:
            setattr(request.constraint, name, value)
    return request


def build_chat_request(messages, *, add_generation_prompt=None, **generate_args):
    """A ChatRequest from [{"role": ..., "content": ...}, ...] (or (role, content) pairs)."""
    chat = pb.ChatRequest()
    for m in messages:
        role, content = (m["role"], m["content"]) if isinstance(m, dict) else m
        chat.messages.add(role=role, content=content)
    if add_generation_prompt is not None:
        chat.add_generation_prompt = add_generation_prompt
    chat.generation.CopyFrom(build_generate_request(**generate_args))
    return chat


def channel_credentials(tls_ca=None, tls_client_cert=None, tls_client_key=None):
    """TLS credentials from PEM file names (None: no TLS)."""
    if tls_ca is None:
        return None

    def read(path):
        with open(path, "rb") as f:
            return f.read()
    return grpc.ssl_channel_credentials(
        root_certificates=read(tls_ca),
        private_key=read(tls_client_key) if tls_client_key else None,
        certificate_chain=read(tls_client_cert) if tls_client_cert else None)


def rpc_error(e) -> KvserveError:
    code = e.code().name if hasattr(e, "code") and e.code() is not None else "UNKNOWN"
    details = e.details() if hasattr(e, "details") else str(e)
    return KvserveError(code, details or "")


class Client:
    """A connection to one kvserve server (gRPC, `target` = "host:port")."""

    def __init__(self, target: str = "localhost:50051", *, api_key: Optional[str] = None,
                 tls_ca: Optional[str] = None, tls_client_cert: Optional[str] = None,
                 tls_client_key: Optional[str] = None, timeout: Optional[float] = 60.0):
        credentials = channel_credentials(tls_ca, tls_client_cert, tls_client_key)
        self._channel = (grpc.insecure_channel(target) if credentials is None
                         else grpc.secure_channel(target, credentials))
        self._stub = pb_grpc.GenerationStub(self._channel)
        self._metadata = [("authorization", f"Bearer {api_key}")] if api_key else None
        self.timeout = timeout

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _stream(self, call, request, timeout) -> Iterator[Delta]:
        responses = call(request, timeout=timeout if timeout is not None else self.timeout,
                         metadata=self._metadata)
        try:
            for response in responses:
                yield to_delta(response)
        except grpc.RpcError as e:
            raise rpc_error(e) from None
        finally:
            responses.cancel()  # a caller that stops iterating early cancels the request

    def generate(self, prompt: Optional[str] = None, *, timeout: Optional[float] = None,
                 **request_args) -> Iterator[Delta]:
        """Streams the continuation of `prompt` (or prompt_token_ids=[...]) as Deltas.
        request_args: max_tokens, temperature, top_k, top_p, min_p, seed, stop, stop_token_ids,
        ignore_eos, logprobs, add_special_tokens, request_id; structured output: json_schema,
        json_object, regex, grammar, choices (see build_generate_request)."""
        if prompt is None and request_args.get("prompt_token_ids") is None:
            raise ValueError("give a prompt or prompt_token_ids")
        request = build_generate_request(prompt, **request_args)
        return self._stream(self._stub.Generate, request, timeout)

    def generate_text(self, prompt: Optional[str] = None, **args) -> str:
        """The whole generated text of generate(...)."""
        return "".join(delta.text for delta in self.generate(prompt, **args))

    def chat(self, messages, *, timeout: Optional[float] = None, **args) -> Iterator[Delta]:
        """Streams the assistant's reply to `messages` (the model's chat template renders
        them). args: add_generation_prompt and generate()'s request_args."""
        return self._stream(self._stub.Chat, build_chat_request(messages, **args), timeout)

    def _unary(self, call, request, timeout):
        try:
            return call(request, timeout=timeout if timeout is not None else self.timeout,
                        metadata=self._metadata)
        except grpc.RpcError as e:
            raise rpc_error(e) from None

    def tokenize(self, text: str, *, add_special_tokens: Optional[bool] = None,
                 timeout: Optional[float] = None) -> List[int]:
        """The model's token ids of `text` (BOS first only with add_special_tokens=True)."""
        request = pb.TokenizeRequest(text=text)
        if add_special_tokens is not None:
            request.add_special_tokens = add_special_tokens
        return list(self._unary(self._stub.Tokenize, request, timeout).token_ids)

    def detokenize(self, token_ids: Sequence[int], *, timeout: Optional[float] = None) -> str:
        """The text of `token_ids`."""
        request = pb.TokenizeRequest(token_ids=pb.TokenIds(ids=list(token_ids)))
        return self._unary(self._stub.Tokenize, request, timeout).text

    def model_info(self, *, timeout: Optional[float] = None) -> dict:
        """name, architecture, context_length, vocab_size, eos_token_ids, weight_dtype,
        kv_cache_dtype, bos_token_id, kv_page_size, demo."""
        return message_to_dict(self._unary(self._stub.GetModelInfo, pb.GetModelInfoRequest(),
                                           timeout))

    def server_info(self, *, timeout: Optional[float] = None) -> dict:
        """running_requests, waiting_requests, kv_cache_usage, free_kv_pages, total_kv_pages,
        draining."""
        return message_to_dict(self._unary(self._stub.GetServerInfo, pb.GetServerInfoRequest(),
                                           timeout))
