"""``/v1``: the OpenAI Chat Completions API that vLLM, Ollama, llama.cpp, TGI and SGLang serve.

``POST /v1/chat/completions`` answers through the same :class:`ChatAgent` → response cache →
:class:`ModelManager` path as ``/api/chat``, so model slots, queue, cache and fallback behave
alike. The API is stateless (clients send the whole history), so a turn is stored nowhere: no
conversation rows, no database work at all. ``GET /v1/models`` lists the primary model.

Authentication (``CAPKIT_OPENAI_AUTH``):

- ``bearer`` (default): a capkit access token, as for ``/api/chat``, and its per-user rate limit.
- ``none``: a valid capkit token still names the user (and its limit); a missing or unverifiable
  one (OpenAI clients pointed at a local server send a dummy key such as ``sk-no-key``) is served
  as anonymous, rate limited per client address under the same limit.

Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``: 401, 422 for a bad
body (OpenAI says 400; 422 is what every other route of this service answers), 429 and 503 with
``Retry-After``; a top-level ``detail`` repeats the message, as every error of this service has
one (OpenAI clients read ``error`` and ignore it). Cached answers are marked with ``X-Cached`` and
``"capkit": {"cached": …}`` on every object (OpenAI clients ignore unknown fields).
``usage.completion_tokens`` is the number of tokens the server sent (content deltas);
``prompt_tokens`` counts the prompt's whitespace-separated words, the service having no tokenizer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from typing import Annotated, AsyncIterator, Callable, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from capkit.service.agent import ChatAgent, Reply, render_prompt
from capkit.service.deps import BearerClaims, StateDep, bearer_token, check_chat_limit, check_limit, claims_from_token
from capkit.service.responses import json_response
from capkit.service.security import InvalidToken, TokenClaims, decode_token
from capkit.service.unavailable import Unavailable

log = logging.getLogger(__name__)

MAX_TOKENS = 4096  # the built-in model's own bound (CAPKIT_MODEL_TOKENS ≤ 4096)

_ERROR_KINDS = {  # status → (type, code), as OpenAI's API names them
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "invalid_value"),
    429: ("requests", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
}


def openai_error(status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> Response:
    """An error response in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``
    (plus ``detail``, the message again, like the service's other errors).

    Parameters
    ----------
    status : int
        The HTTP status.
    message : str
        One line saying what is wrong.
    param : str, optional
        The request field at fault.
    code : str, optional
        Overrides the code derived from ``status``.
    headers : dict, optional
        Extra headers (``Retry-After``, ``WWW-Authenticate``).
    """
    kind, default_code = _ERROR_KINDS.get(status, ("server_error" if status >= 500 else "invalid_request_error",
                                                   None))
    body = {"error": {"message": message, "type": kind, "param": param, "code": code or default_code},
            "detail": message}
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _validation_error(err: RequestValidationError) -> Response:
    """The first problem of a body that failed validation, as one line naming the field."""
    first = err.errors()[0]
    if first.get("type") == "json_invalid":
        return openai_error(422, f"request body is not valid JSON ({first['msg']})", code="json_invalid")
    param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
    message = f"{param}: {first['msg']}" if param else first["msg"]
    return openai_error(422, message, param=param, code=first.get("type"))


class OpenAIRoute(APIRoute):
    """Answers this router's errors in OpenAI's shape (the rest of the service keeps ``{"detail"}``).

    The handler FastAPI builds for a route also resolves its dependencies and validates its
    body, so wrapping it catches 401/429 from the auth dependency and 422 from validation.
    """

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def openai_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as err:
                return _validation_error(err)
            except StarletteHTTPException as err:
                return openai_error(err.status_code, str(err.detail), headers=err.headers)
            except Unavailable as err:
                return openai_error(err.status_code, err.detail, headers={"Retry-After": str(err.retry_after)})

        return openai_errors


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)


class OpenAIClaims(BearerClaims):
    """The caller under ``CAPKIT_OPENAI_AUTH``: the token's claims, or None for an anonymous
    caller when the setting is ``none``; with ``limit`` the chat rate limit is counted too."""

    def __init__(self, *, limit: bool) -> None:
        super().__init__()
        self.limit = limit

    async def __call__(self, request: Request) -> TokenClaims | None:  # type: ignore[override]
        state = request.app.state.service
        token = bearer_token(request.scope["headers"])
        if state.settings.openai_auth == "bearer":
            user = claims_from_token(state, token)
        else:
            user = None
            if token:
                with contextlib.suppress(InvalidToken):  # a dummy key: served as anonymous
                    user = decode_token(token, secret=state.settings.jwt_secret,
                                        algorithm=state.settings.jwt_algorithm)
        if self.limit:
            if user is not None:
                await check_chat_limit(state, user)
            else:
                host = request.client.host if request.client else "unknown"
                await check_limit(state, "chat-anonymous", host, who="this client")
        return user


OpenAIUser = Annotated[TokenClaims | None, Depends(OpenAIClaims(limit=False))]
OpenAIChatUser = Annotated[TokenClaims | None, Depends(OpenAIClaims(limit=True))]


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields of OpenAI's request the service uses; any other field is ignored."""

    model: str = Field(min_length=1, max_length=200, description="answered by the primary model whatever it names")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS, description="cap on the tokens generated")
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS, description="newer name of max_tokens")
    stream_options: StreamOptions | None = None

    @property
    def token_cap(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


def _finish_reason(tokens: int, cap: int | None) -> str:
    return "length" if cap is not None and tokens >= cap else "stop"


def _usage(prompt: str, completion_tokens: int) -> dict:
    prompt_tokens = len(prompt.split())
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _headers(reply: Reply) -> dict[str, str]:
    return {"X-Model": reply.model, "X-Cached": "true" if reply.cached else "false", "Cache-Control": "no-cache"}


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, user: OpenAIChatUser, state: StateDep) -> Response:
    """OpenAI Chat Completions: one ``chat.completion``, or with ``stream`` server-sent events."""
    limit = state.settings.max_message_chars
    for i, message in enumerate(body.messages):
        if len(message.text()) > limit:
            raise HTTPException(422, f"messages.{i}.content is {len(message.text())} characters; the limit is {limit}")
    prompt = render_prompt([(m.role, m.text()) for m in body.messages])
    agent = ChatAgent(state)
    turn = agent.start_stateless(prompt, body.token_cap, user_id=user.uid if user is not None else None)
    completion_id, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
    if not body.stream:
        reply = await agent.reply(turn)
        doc = {"id": completion_id, "object": "chat.completion", "created": created, "model": reply.model,
               "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.reply},
                            "finish_reason": _finish_reason(reply.tokens, turn.max_tokens)}],
               "usage": _usage(prompt, reply.tokens), "capkit": {"cached": reply.cached}}
        return json_response(json.dumps(doc), headers=_headers(reply))
    tokens, reply = await agent.stream(turn)
    usage = body.stream_options is not None and body.stream_options.include_usage
    events = _events(tokens, reply, completion_id, created, prompt, turn.max_tokens, usage)
    # StreamingResponse, not fastapi.sse (FastAPI ≥ 0.135 only; capkit supports ≥ 0.110): each
    # yielded event is its own body message, so each token is flushed as it is produced
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={**_headers(reply), "X-Accel-Buffering": "no"})


async def _events(tokens: AsyncIterator[str], reply: Reply, completion_id: str, created: int, prompt: str,
                  cap: int | None, include_usage: bool) -> AsyncIterator[str]:
    # every chunk but its delta is the same: built once, so a token costs one json.dumps of itself
    usage_null = ',"usage":null' if include_usage else ""  # OpenAI's rule once include_usage is set
    head = (f'data: {{"id":"{completion_id}","object":"chat.completion.chunk","created":{created},'
            f'"model":{json.dumps(reply.model)},"choices":[{{"index":0,"delta":')
    mark = f'"capkit":{{"cached":{"true" if reply.cached else "false"}}}}}\n\n'
    tail = f',"finish_reason":null}}]{usage_null},' + mark
    yield head + '{"role":"assistant"}' + tail
    sent = 0
    # aclosing: a client that goes away closes the agent's stream now, releasing the model slot
    async with contextlib.aclosing(tokens):
        try:
            async for token in tokens:
                sent += 1
                yield head + '{"content":' + json.dumps(token) + "}" + tail
        except Exception as exc:  # noqa: BLE001 - headers are sent: the error becomes an event
            log.warning("model failed mid-stream after %d tokens: %s", sent, exc)
            error = {"error": {"message": f"model failed mid-stream: {exc}", "type": "server_error",
                               "param": None, "code": "backend_error"}}
            yield f"data: {json.dumps(error)}\n\ndata: [DONE]\n\n"
            return
    finish = json.dumps(_finish_reason(sent, cap))
    yield head + "{}" + f',"finish_reason":{finish}}}]{usage_null},' + mark
    if include_usage:
        yield (f'data: {{"id":"{completion_id}","object":"chat.completion.chunk","created":{created},'
               f'"model":{json.dumps(reply.model)},"choices":[],"usage":{json.dumps(_usage(prompt, sent))},' + mark)
    yield "data: [DONE]\n\n"


@router.get("/models", response_model=None)
async def list_models(_user: OpenAIUser, state: StateDep) -> Response:
    """The primary model, in OpenAI's list shape (clients call it to pick a model name)."""
    doc = {"object": "list", "data": [{"id": state.models.primary, "object": "model", "created": int(time.time()),
                                       "owned_by": "capkit"}]}
    return json_response(json.dumps(doc))
