"""kvserve.AsyncClient: the same calls as kvserve.Client on a grpc.aio channel, for asyncio.

    async with kvserve.AsyncClient("localhost:50051") as client:
        async for delta in client.generate("Prince Andrew", max_tokens=32):
            print(delta.text, end="", flush=True)

Use one AsyncClient from one event loop (grpc.aio channels belong to the loop they were made
on). Errors raise kvserve.KvserveError, as with Client.
"""
from typing import AsyncIterator, List, Optional, Sequence

from kvserve import _grpc_import

grpc = _grpc_import.require()

from grpc import aio  # noqa: E402

from kvserve.client import (Delta, build_chat_request, build_generate_request,  # noqa: E402
                            channel_credentials, message_to_dict, rpc_error, to_delta)
from kvserve.v1 import generation_pb2 as pb  # noqa: E402
from kvserve.v1 import generation_pb2_grpc as pb_grpc  # noqa: E402


class AsyncClient:
    """A grpc.aio connection to one kvserve server."""

    def __init__(self, target: str = "localhost:50051", *, api_key: Optional[str] = None,
                 tls_ca: Optional[str] = None, tls_client_cert: Optional[str] = None,
                 tls_client_key: Optional[str] = None, timeout: Optional[float] = 60.0):
        credentials = channel_credentials(tls_ca, tls_client_cert, tls_client_key)
        self._channel = (aio.insecure_channel(target) if credentials is None
                         else aio.secure_channel(target, credentials))
        self._stub = pb_grpc.GenerationStub(self._channel)
        self._metadata = [("authorization", f"Bearer {api_key}")] if api_key else None
        self.timeout = timeout

    async def close(self):
        await self._channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def _timeout(self, timeout):
        return timeout if timeout is not None else self.timeout

    async def _stream(self, call, request, timeout) -> AsyncIterator[Delta]:
        responses = call(request, timeout=self._timeout(timeout), metadata=self._metadata)
        try:
            async for response in responses:
                yield to_delta(response)
        except grpc.RpcError as e:
            raise rpc_error(e) from None
        finally:
            responses.cancel()

    def generate(self, prompt: Optional[str] = None, *, timeout: Optional[float] = None,
                 **request_args) -> AsyncIterator[Delta]:
        """Streams Deltas, as Client.generate."""
        if prompt is None and request_args.get("prompt_token_ids") is None:
            raise ValueError("give a prompt or prompt_token_ids")
        return self._stream(self._stub.Generate, build_generate_request(prompt, **request_args),
                            timeout)

    async def generate_text(self, prompt: Optional[str] = None, **args) -> str:
        return "".join([delta.text async for delta in self.generate(prompt, **args)])

    def chat(self, messages, *, timeout: Optional[float] = None, **args) -> AsyncIterator[Delta]:
        """Streams the assistant's reply, as Client.chat."""
        return self._stream(self._stub.Chat, build_chat_request(messages, **args), timeout)

    async def _unary(self, call, request, timeout):
        try:
            return await call(request, timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as e:
            raise rpc_error(e) from None

    async def tokenize(self, text: str, *, add_special_tokens: Optional[bool] = None,
                       timeout: Optional[float] = None) -> List[int]:
        request = pb.TokenizeRequest(text=text)
        if add_special_tokens is not None:
            request.add_special_tokens = add_special_tokens
        return list((await self._unary(self._stub.Tokenize, request, timeout)).token_ids)

    async def detokenize(self, token_ids: Sequence[int], *,
                         timeout: Optional[float] = None) -> str:
        request = pb.TokenizeRequest(token_ids=pb.TokenIds(ids=list(token_ids)))
        return (await self._unary(self._stub.Tokenize, request, timeout)).text

    async def model_info(self, *, timeout: Optional[float] = None) -> dict:
        return message_to_dict(await self._unary(self._stub.GetModelInfo,
                                                 pb.GetModelInfoRequest(), timeout))

    async def server_info(self, *, timeout: Optional[float] = None) -> dict:
        return message_to_dict(await self._unary(self._stub.GetServerInfo,
                                                 pb.GetServerInfoRequest(), timeout))
