"""The ChatAgent: conversation context from the database → response cache → ModelManager → store.

A turn without a conversation (:meth:`ChatAgent.start_stateless`, the OpenAI-compatible API,
whose clients send the whole history) takes the same cache and model path and touches no table.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import AsyncIterator

from sqlalchemy import Engine, delete, insert, select

from capkit.service.db import conversations, messages, model_calls, utcnow
from capkit.service.state import ServiceState


class ConversationNotFound(Exception):
    """The conversation does not exist or belongs to someone else."""

    def __init__(self, conversation_id: int):
        self.conversation_id = conversation_id
        super().__init__(f"conversation {conversation_id} not found")


@dataclass
class Turn:
    user_id: int | None
    conversation_id: int | None  # None: stateless, nothing is stored
    message: str
    prompt: str
    max_tokens: int | None = None


@dataclass
class Reply:
    conversation_id: int | None
    reply: str
    tokens: int
    model: str
    cached: bool
    fallback: bool = False
    parts: list[str] | None = None  # the tokens as sent (a cached answer replays them)


def _open_conversation(engine: Engine, uid: int, cid: int | None, message: str, context: int):
    with engine.begin() as conn:
        if cid is None:
            cid = conn.execute(insert(conversations).values(user_id=uid, title=message[:60] or "chat",
                                                            created_at=utcnow())).inserted_primary_key[0]
            return cid, []
        owner = conn.execute(select(conversations.c.user_id).where(conversations.c.id == cid)).scalar()
        if owner is None or owner != uid:
            return None, []
        if context <= 0:
            return cid, []
        rows = conn.execute(select(messages.c.role, messages.c.content).where(messages.c.conversation_id == cid)
                            .order_by(messages.c.id.desc()).limit(context)).all()
        return cid, [(r.role, r.content) for r in reversed(rows)]


def _store_turn(engine: Engine, turn: Turn, reply: Reply, latency_ms: float) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(messages), [
            {"conversation_id": turn.conversation_id, "user_id": turn.user_id, "role": "user",
             "content": turn.message, "tokens": len(turn.message.split()), "created_at": now},
            {"conversation_id": turn.conversation_id, "user_id": turn.user_id, "role": "assistant",
             "content": reply.reply, "tokens": reply.tokens, "created_at": now},
        ])
        conn.execute(insert(model_calls).values(conversation_id=turn.conversation_id, user_id=turn.user_id,
                                                model=reply.model, tokens=reply.tokens, latency_ms=latency_ms,
                                                cached=reply.cached, fallback=reply.fallback, ok=True,
                                                created_at=now))


def _history(engine: Engine, uid: int, cid: int):
    with engine.connect() as conn:
        owner = conn.execute(select(conversations.c.user_id).where(conversations.c.id == cid)).scalar()
        if owner is None or owner != uid:
            return None
        rows = conn.execute(select(messages.c.id, messages.c.role, messages.c.content, messages.c.tokens,
                                   messages.c.created_at)
                            .where(messages.c.conversation_id == cid).order_by(messages.c.id)).all()
        return [{"id": r.id, "role": r.role, "content": r.content, "tokens": r.tokens,
                 "created_at": r.created_at.isoformat()} for r in rows]


def _delete(engine: Engine, uid: int, cid: int) -> int | None:
    with engine.begin() as conn:
        owner = conn.execute(select(conversations.c.user_id).where(conversations.c.id == cid)).scalar()
        if owner is None or owner != uid:
            return None
        conn.execute(delete(model_calls).where(model_calls.c.conversation_id == cid))
        n = conn.execute(delete(messages).where(messages.c.conversation_id == cid)).rowcount
        conn.execute(delete(conversations).where(conversations.c.id == cid))
        return n


def render_prompt(lines: list[tuple[str, str]]) -> str:
    """The model prompt for ``(role, content)`` lines: one ``role: content`` line each, then
    ``assistant:``."""
    return "\n".join([f"{role}: {content}" for role, content in lines] + ["assistant:"])


def split_tokens(text: str) -> list[str]:
    """Split a cached answer back into the tokens a stream sends (leading space kept)."""
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


class ChatAgent:
    """One chat turn at a time, for one app's :class:`ServiceState`."""

    def __init__(self, state: ServiceState):
        self.state = state

    async def start(self, user_id: int, conversation_id: int | None, message: str) -> Turn:
        ctx = self.state.settings.chat_context_messages
        cid, context = await self.state.run_db(_open_conversation, user_id, conversation_id, message, ctx)
        if cid is None:
            raise ConversationNotFound(conversation_id)
        return Turn(user_id, cid, message, render_prompt(context + [("user", message)]))

    def start_stateless(self, prompt: str, max_tokens: int | None = None, user_id: int | None = None) -> Turn:
        """A turn for a ready ``prompt`` that belongs to no conversation: nothing is stored.

        Parameters
        ----------
        prompt : str
            The whole prompt (see :func:`render_prompt`).
        max_tokens : int, optional
            The most tokens to generate; part of the cache key.
        user_id : int, optional
            Who asked, if known.
        """
        return Turn(user_id, None, "", prompt, max_tokens)

    def _cache_key(self, turn: Turn) -> str:
        cap = "" if turn.max_tokens is None else str(turn.max_tokens)
        return hashlib.sha256(f"{self.state.models.primary}\0{cap}\0{turn.prompt}".encode()).hexdigest()

    async def _cached(self, turn: Turn) -> Reply | None:
        if not self.state.settings.response_cache:
            return None
        raw = await self.state.response_cache.get(self._cache_key(turn))
        if raw is None:
            return None
        data = json.loads(raw)
        # entries written before the tokens were kept hold only the text: split it as before
        parts = data.get("parts") or split_tokens(data["reply"])
        return Reply(turn.conversation_id, "".join(parts), len(parts), data["model"], cached=True, parts=parts)

    async def _remember(self, turn: Turn, reply: Reply) -> None:
        if self.state.settings.response_cache and not reply.fallback:
            value = json.dumps({"parts": reply.parts, "model": reply.model})
            await self.state.response_cache.set(self._cache_key(turn), value, self.state.settings.cache_ttl_s)

    async def _store(self, turn: Turn, reply: Reply, t0: float) -> None:
        if turn.conversation_id is not None:
            await self.state.run_db(_store_turn, turn, reply, (time.perf_counter() - t0) * 1000)

    async def reply(self, turn: Turn) -> Reply:
        """The whole answer (from the cache when the same prompt was answered within the TTL)."""
        t0 = time.perf_counter()
        reply = await self._cached(turn)
        if reply is None:
            gen = await self.state.models.open(turn.prompt, turn.max_tokens)
            parts = [token async for token in gen]
            reply = Reply(turn.conversation_id, "".join(parts), gen.tokens, gen.model, cached=False,
                          fallback=gen.fallback, parts=parts)
            await self._remember(turn, reply)
        await self._store(turn, reply, t0)
        return reply

    async def stream(self, turn: Turn) -> tuple[AsyncIterator[str], Reply]:
        """Start the answer; returns ``(tokens, reply)`` where ``reply`` is filled as tokens flow.

        A model failure surfaces here (before any byte is sent); the turn is stored when the
        stream has been consumed completely.
        """
        t0 = time.perf_counter()
        cached = await self._cached(turn)
        gen = None if cached is not None else await self.state.models.open(turn.prompt, turn.max_tokens)
        reply = cached or Reply(turn.conversation_id, "", 0, gen.model, cached=False, fallback=gen.fallback)

        async def tokens() -> AsyncIterator[str]:
            parts = []
            try:
                if cached is not None:
                    for token in cached.parts:
                        yield token
                else:
                    async for token in gen:
                        parts.append(token)
                        yield token
                    reply.reply, reply.tokens, reply.parts = "".join(parts), gen.tokens, parts
                    await self._remember(turn, reply)
            finally:
                if gen is not None:
                    await gen.aclose()
            await self._store(turn, reply, t0)

        return tokens(), reply

    async def history(self, user_id: int, conversation_id: int) -> list[dict]:
        rows = await self.state.run_db(_history, user_id, conversation_id)
        if rows is None:
            raise ConversationNotFound(conversation_id)
        return rows

    async def delete(self, user_id: int, conversation_id: int) -> int:
        n = await self.state.run_db(_delete, user_id, conversation_id)
        if n is None:
            raise ConversationNotFound(conversation_id)
        return n
