"""``/api/ws/chat``: authenticated WebSocket chat streaming tokens as they are produced.

Authenticate with ``?token=…`` or a first message ``{"token": "…"}``. Then send
``{"message": "…", "conversation_id": null}``; receive ``{"type": "start", …}``, one
``{"type": "token", "token": "…"}`` per token and ``{"type": "done", …}``. Problems arrive as
``{"type": "error", "status": 4xx/5xx, "detail": "…"}`` and the connection stays open.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from capkit.service.agent import ChatAgent, ConversationNotFound
from capkit.service.chat import ChatRequest
from capkit.service.deps import check_chat_limit, claims_from_token
from capkit.service.unavailable import Unavailable

router = APIRouter(prefix="/api/ws", tags=["websocket"])


async def _authenticate(ws: WebSocket, state):
    token = ws.query_params.get("token")
    if not token:
        first = await ws.receive_json()
        token = first.get("token") if isinstance(first, dict) else None
    return claims_from_token(state, token)


@router.websocket("/chat")
async def chat_socket(ws: WebSocket) -> None:
    state = ws.app.state.service
    await ws.accept()
    state.metrics.ws_connections.inc()
    try:
        try:
            user = await _authenticate(ws, state)
        except (HTTPException, ValueError) as err:
            detail = err.detail if isinstance(err, HTTPException) else "first message must be JSON {\"token\": …}"
            await ws.send_json({"type": "error", "status": 401, "detail": detail})
            await ws.close(code=4401)
            return
        await ws.send_json({"type": "ready", "sub": user.sub})
        agent = ChatAgent(state)
        while True:
            try:
                data = await ws.receive_json()
            except ValueError:
                await ws.send_json({"type": "error", "status": 400, "detail": "messages must be JSON objects"})
                continue
            state.metrics.ws_messages.inc()
            await _one_turn(ws, state, agent, user, data)
    except WebSocketDisconnect:
        pass
    finally:
        state.metrics.ws_connections.dec()


async def _one_turn(ws: WebSocket, state, agent: ChatAgent, user, data) -> None:
    try:
        body = ChatRequest.model_validate(data)
        if len(body.message) > state.settings.max_message_chars:
            raise HTTPException(422, f"message is {len(body.message)} characters; "
                                     f"the limit is {state.settings.max_message_chars}")
        await check_chat_limit(state, user)
        turn = await agent.start(user.uid, body.conversation_id, body.message)
        tokens, reply = await agent.stream(turn)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        await ws.send_json({"type": "error", "status": 422, "detail": f"{where}: {first['msg']}"})
        return
    except HTTPException as err:
        await ws.send_json({"type": "error", "status": err.status_code, "detail": err.detail,
                            "retry_after": (err.headers or {}).get("Retry-After")})
        return
    except ConversationNotFound as err:
        await ws.send_json({"type": "error", "status": 404, "detail": str(err)})
        return
    except Unavailable as err:
        await ws.send_json({"type": "error", "status": 503, "detail": err.detail, "retry_after": err.retry_after})
        return
    await ws.send_json({"type": "start", "conversation_id": turn.conversation_id, "model": reply.model,
                        "cached": reply.cached})
    n = 0
    async for token in tokens:
        n += 1
        await ws.send_json({"type": "token", "token": token})
    await ws.send_json({"type": "done", "conversation_id": turn.conversation_id, "tokens": n, "model": reply.model,
                        "cached": reply.cached})
