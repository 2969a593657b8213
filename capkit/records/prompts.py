"""Prompt datasets of the ``openai-chat`` scenario: the formats people have, and synthetic prompts.

Pure Python, shared by the load generator (which sends them) and the run's checks (which read a
``--prompts`` file whole before any process starts, so a bad line is refused with its line number).

A dataset is a list of :class:`Conversation`; a conversation is its user turns in order. Formats
(decided by the first non-empty line):

- **text**: one prompt a line (a single-turn conversation each);
- **JSONL**: a line is a JSON string, ``{"prompt": …}``, ``{"messages": [...]}`` (OpenAI chat
  messages, sent as they are: one turn) or a ShareGPT-style conversation
  ``{"conversations": [{"from": "human", "value": …}, {"from": "gpt", …}, …]}`` (also ``role`` /
  ``content``; the human/user turns are replayed in order, the recorded answers are not sent: the
  server's own answers become the history);
- **a JSON array** of such objects (the shape of ``ShareGPT_V3_unfiltered_cleaned_split.json``).

``capkit:conversations`` names the small conversation set bundled with capkit (written for it).

Synthetic prompts (no dataset): :class:`LengthDist` draws lengths in tokens (normal, mean and sd,
clipped to [min, max], as LLMPerf draws them); :func:`synthetic_text` writes that many words, each
one token in the common BPE vocabularies (GPT-2/cl100k, Llama), so a server counts about that many
plus its chat template. capkit ships no tokenizer: the server's ``usage.prompt_tokens`` is recorded.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from capkit.errors import ConfigError

BUNDLED = {"capkit:conversations": Path(__file__).parent / "data" / "conversations.jsonl"}
HUMAN = {"human", "user"}
ANSWER = {"gpt", "assistant", "chatgpt", "bard", "bing", "model"}

# common English words that are single tokens (with their leading space) in GPT-2, cl100k and Llama
WORDS = tuple("""the of and to in is it that for on with as was at by be this from or an are not
have had but his they all one you were which her she there can we more been their if will when would
who so no out up said what its about than into them only time some could new two may first then do
any like my now over such our man me even most made after also did many before must through back years
where much your way well down should because each just those people how too little state good very make
world still own see men work long get here between both life being under never day same another know
while last might us great old year off come since against go came right used take three house
school water money point room place number group problem fact hand part case week company system
program question night word home side head story city book line end name team power country service
family change game light open small large high short best next early young local public free
full real able sure clear hard late black white red green blue study order market health
music road rate level price data test plan""".split())


@dataclass(frozen=True)
class Turn:
    """One request of a conversation: the user's text, or a whole ``messages`` list sent as is."""

    prompt: str | tuple
    max_tokens: int | None = None

    def messages(self) -> list[dict]:
        if isinstance(self.prompt, tuple):
            return [dict(m) for m in self.prompt]
        return [{"role": "user", "content": self.prompt}]


@dataclass(frozen=True)
class Conversation:
    """User turns in order; ``system``: a system message the conversation opens with (ShareGPT's)."""

    turns: tuple[Turn, ...]
    system: str | None = None


def resolve(path: str | Path) -> Path:
    """A ``--prompts`` value as a path (``capkit:conversations``: the bundled set)."""
    return BUNDLED.get(str(path), Path(path))


def load_dataset(path: str | Path) -> list[Conversation]:
    """Every conversation of a dataset file (formats: the module docstring).

    Raises
    ------
    ConfigError
        One line naming the file and the line (or array item) that cannot be read, or an empty file.
    """
    p = resolve(path)
    if not p.is_file():
        raise ConfigError(f"--prompts {path} does not exist (one prompt a line, JSONL, or a ShareGPT JSON array; "
                          f"capkit:conversations is a bundled sample)")
    text = p.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    first = next((line.strip() for line in lines if line.strip()), "")
    if not first:
        raise ConfigError(f"--prompts {path} holds no prompt (one prompt a line, JSONL, or a ShareGPT JSON array)")
    if first.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: not a JSON array of conversations ({exc.msg})") from None
        if not isinstance(items, list):
            raise ConfigError(f"{path}: not a JSON array of conversations")
        return [_record(doc, f"{path}: item {i + 1}") for i, doc in enumerate(items)]
    if first[0] not in "{\"":
        return [Conversation((Turn(line.strip()),)) for line in lines if line.strip()]
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{n}: not JSON ({exc.msg} at column {exc.colno}); a JSONL dataset has one "
                              f"JSON object a line") from None
        out.append(_record(doc, f"{path}:{n}"))
    return out


def _record(doc, where: str) -> Conversation:
    if isinstance(doc, str) and doc.strip():
        return Conversation((Turn(doc),))
    if isinstance(doc, dict):
        if isinstance(doc.get("prompt"), str) and doc["prompt"].strip():
            return Conversation((Turn(doc["prompt"]),))
        if "messages" in doc:
            return Conversation((Turn(_messages(doc["messages"], where)),))
        turns = doc.get("conversations", doc.get("conversation"))
        if turns is not None:
            return _sharegpt(turns, where)
    raise ConfigError(f"{where}: neither a prompt string, {{\"prompt\": …}}, {{\"messages\": [...]}} nor "
                      f"{{\"conversations\": [...]}} (ShareGPT)")


def _messages(items, where: str) -> tuple:
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: \"messages\" is not a non-empty list of chat messages")
    for m in items:
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m):
            raise ConfigError(f"{where}: a message without \"role\" and \"content\": {json.dumps(m)[:60]}")
    return tuple(dict(m) for m in items)


def _sharegpt(items, where: str) -> Conversation:
    if not isinstance(items, list):
        raise ConfigError(f"{where}: \"conversations\" is not a list of turns")
    system, turns = None, []
    for item in items:
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: a turn that is not an object: {json.dumps(item)[:60]}")
        who = str(item.get("from", item.get("role", ""))).lower()
        text = item.get("value", item.get("content"))
        if not isinstance(text, str):
            raise ConfigError(f"{where}: a turn without \"value\" (or \"content\") text")
        if who == "system":
            system = text
        elif who in HUMAN:
            turns.append(Turn(text))
        elif who not in ANSWER:
            raise ConfigError(f"{where}: a turn from {who!r}, not human/user, gpt/assistant or system")
    if not turns:
        raise ConfigError(f"{where}: a conversation without a human turn")
    return Conversation(tuple(turns), system)


@dataclass(frozen=True)
class LengthDist:
    """A length in tokens (or a count of turns): normal with ``mean`` and ``sd``, rounded and clipped
    to [``low``, ``high``] (``sd`` 0: always the mean)."""

    mean: float
    sd: float = 0.0
    low: int = 1
    high: int | None = None

    @classmethod
    def parse(cls, text: str | None, option: str) -> "LengthDist | None":
        """``MEAN[,SD[,MIN,MAX]]`` or None; ConfigError naming ``option`` otherwise."""
        if text is None:
            return None
        parts = [p.strip() for p in text.split(",")]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = []
        ok = len(numbers) in (1, 2, 4) and all(x == x and abs(x) != float("inf") for x in numbers)
        if ok:
            mean, sd = numbers[0], numbers[1] if len(numbers) > 1 else 0.0
            low, high = (numbers[2], numbers[3]) if len(numbers) == 4 else (1.0, None)
            ok = mean >= 1 and sd >= 0 and low >= 1 and low == int(low) and (
                high is None or (high == int(high) and low <= mean <= high))
        if not ok:
            raise ConfigError(f"{option} {text!r} is not MEAN[,SD[,MIN,MAX]] with MEAN ≥ 1, SD ≥ 0 and whole "
                              f"1 ≤ MIN ≤ MEAN ≤ MAX (example: {option} 512,128,64,2048)")
        return cls(mean, sd, int(low), None if high is None else int(high))

    def draw(self, rng: random.Random) -> int:
        n = round(rng.gauss(self.mean, self.sd)) if self.sd else round(self.mean)
        n = max(n, self.low)
        return min(n, self.high) if self.high is not None else n

    def to_text(self) -> str:
        return f"{self.mean:g},{self.sd:g}" + (f",{self.low},{self.high}" if self.high is not None else "")


def synthetic_text(tokens: int, rng: random.Random) -> str:
    """``tokens`` words, each a single token in the common BPE vocabularies, drawn with ``rng``."""
    return " ".join(rng.choice(WORDS) for _ in range(tokens))


def shared_prefix(tokens: int) -> str:
    """The system prompt shared by a share of requests: the same ``tokens`` words in every load process."""
    return synthetic_text(tokens, random.Random("capkit-shared-prefix"))


__all__ = ["BUNDLED", "WORDS", "Conversation", "LengthDist", "Turn", "load_dataset", "resolve", "shared_prefix",
           "synthetic_text"]
