"""``/api/chat``: whole answers, streamed answers, conversation history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from capkit.service.agent import ChatAgent
from capkit.service.deps import ChatUser, CurrentUser, StateDep
from capkit.service.responses import model_response

router = APIRouter(prefix="/api/chat", tags=["chat"])


async def get_agent(state: StateDep) -> ChatAgent:
    return ChatAgent(state)


AgentDep = Annotated[ChatAgent, Depends(get_agent)]
ConversationId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a conversation id")]


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, description="the user's message (at most CAPKIT_MAX_MESSAGE_CHARS)")
    conversation_id: int | None = Field(None, ge=1, le=2**31 - 1, description="continue this conversation")


class ChatResponse(BaseModel):
    conversation_id: int
    reply: str
    tokens: int
    model: str
    cached: bool


def check_message(body: ChatRequest, max_chars: int) -> None:
    """422 with a clear body when the message is too long."""
    if len(body.message) > max_chars:
        raise HTTPException(422, f"message is {len(body.message)} characters; the limit is {max_chars}")


@router.post("/message", response_model=ChatResponse)
async def message(body: ChatRequest, user: ChatUser, agent: AgentDep, state: StateDep) -> Response:
    check_message(body, state.settings.max_message_chars)
    turn = await agent.start(user.uid, body.conversation_id, body.message)
    r = await agent.reply(turn)
    return model_response(ChatResponse(conversation_id=r.conversation_id, reply=r.reply, tokens=r.tokens,
                                       model=r.model, cached=r.cached))


@router.post("/stream")
async def stream(body: ChatRequest, user: ChatUser, agent: AgentDep, state: StateDep) -> StreamingResponse:
    """Tokens as ``text/plain`` chunks, sent as they are produced."""
    check_message(body, state.settings.max_message_chars)
    turn = await agent.start(user.uid, body.conversation_id, body.message)
    tokens, reply = await agent.stream(turn)
    headers = {"X-Conversation-Id": str(turn.conversation_id), "X-Model": reply.model,
               "X-Cached": "true" if reply.cached else "false", "Cache-Control": "no-cache"}
    return StreamingResponse(tokens, media_type="text/plain; charset=utf-8", headers=headers)


@router.get("/history/{conversation_id}")
async def history(conversation_id: ConversationId, user: CurrentUser, agent: AgentDep) -> dict:
    return {"conversation_id": conversation_id, "messages": await agent.history(user.uid, conversation_id)}


@router.delete("/history/{conversation_id}")
async def delete_history(conversation_id: ConversationId, user: CurrentUser, agent: AgentDep) -> dict:
    return {"conversation_id": conversation_id, "deleted_messages": await agent.delete(user.uid, conversation_id)}
