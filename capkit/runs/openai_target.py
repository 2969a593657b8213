"""`capkit run --target URL --scenario openai-chat`: any OpenAI-compatible streaming server, timed per token.

The target is checked before anything is created: one streamed completion of one token must come
back as server-sent events, else the run is refused with one line (nothing is written).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import httpx

from capkit.errors import ConfigError, ServiceError
from capkit.loadgen import OPENAI_CHAT
from capkit.records.llm import Slo
from capkit.records.prompts import LengthDist, load_dataset, resolve
from capkit.records.traces import TraceRequest, load_trace, peak_arrivals
from capkit.runs.orchestrator import RunResult, new_run_id, run_load
from capkit.runs.progress import progress_printer
from capkit.runs.target import check_target, prepare_collectors
from capkit.schemas import DEFAULT_CRITERIA, Criteria, RunSpec, Stage, StagePlan
from capkit.store import Store

PATH = "/v1/chat/completions"


def _not_openai(url: str, why: str) -> ConfigError:
    return ConfigError(f"{url}{PATH} is not an OpenAI-compatible streaming endpoint ({why}); "
                       f"point --target at the server's base URL (it serves {PATH})")


def check_openai_target(url: str, *, model: str, api_key: str | None = None, timeout: float = 30.0) -> None:
    """Ask ``url`` for one streamed token; raise a one-line :class:`CapkitError` unless it streams SSE.

    Parameters
    ----------
    url : str
        The server's base URL (``http://host:port``, without ``/v1``).
    model : str
        The ``model`` field sent.
    api_key : str, optional
        Sent as ``Authorization: Bearer``.
    """
    check_target(url)
    body = {"model": model, "messages": [{"role": "user", "content": "ping"}], "stream": True, "max_tokens": 1}
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.stream("POST", url + PATH, json=body, headers=headers, timeout=timeout) as resp:
            if resp.status_code in (401, 403):
                raise ConfigError(f"{url}{PATH} refused the request (HTTP {resp.status_code}): give the API key "
                                  f"with --api-key-env VAR (the variable holding it; capkit's reference service: "
                                  f"`capkit token --target {url}` prints one, or serve it with "
                                  f"CAPKIT_OPENAI_AUTH=none)")
            if resp.status_code != 200:
                resp.read()
                detail = resp.text.strip().splitlines()[0][:120] if resp.text.strip() else ""
                raise _not_openai(url, f"HTTP {resp.status_code}" + (f": {detail}" if detail else ""))
            kind = resp.headers.get("content-type", "")
            if not kind.startswith("text/event-stream"):
                raise _not_openai(url, f"it answered {kind or 'no Content-Type'}, not text/event-stream")
            for line in resp.iter_lines():
                if line.startswith("data:"):
                    data = line[5:].strip()
                    try:
                        doc = json.loads(data)
                    except json.JSONDecodeError:
                        raise _not_openai(url, f"its first event is not JSON: {data[:60]!r}") from None
                    if not isinstance(doc, dict) or not ("choices" in doc or "error" in doc):
                        raise _not_openai(url, "its first event has no choices")
                    if "error" in doc and not doc.get("choices"):
                        raise _not_openai(url, f"it answered an error event: {str(doc['error'])[:80]}")
                    return
            raise _not_openai(url, "the stream ended without a data event")
    except httpx.HTTPError as exc:
        raise ServiceError(f"target {url} does not answer {PATH} ({type(exc).__name__}); start it or fix --target") \
            from None


def reference_token(url: str, *, username: str, password: str, timeout: float = 10.0) -> str:
    """An access token of capkit's reference service at ``url`` (``POST /api/auth/token``): what its
    ``/v1`` wants as ``Authorization: Bearer`` under ``CAPKIT_OPENAI_AUTH=bearer`` (the default).

    Parameters
    ----------
    url : str
        The service's base URL (``http://host:port``).
    username, password : str
        A user of the service (``capkit serve`` seeds the load-test accounts ``loadtest-0000``…).

    Raises
    ------
    ServiceError
        When the service does not answer; :class:`ConfigError` when it refuses the user.
    """
    try:
        resp = httpx.post(url.rstrip("/") + "/api/auth/token", json={"username": username, "password": password},
                          timeout=timeout)
    except httpx.HTTPError as exc:
        raise ServiceError(f"{url} does not answer ({type(exc).__name__}); start it with `capkit serve` "
                           f"or fix --target") from None
    if resp.status_code in (401, 403):
        raise ConfigError(f"{url} refused user {username!r} (HTTP {resp.status_code}: {_detail(resp)}); "
                          f"give --username and --password of a user of that service")
    try:
        return str(resp.json()["access_token"])
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{url}/api/auth/token gave no token (HTTP {resp.status_code}): is --target capkit's "
                          f"reference service?") from None


def _detail(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["detail"])[:120]
    except (ValueError, KeyError, TypeError):
        return resp.text.strip()[:120]


def target_model(url: str, api_key_env: str | None = None) -> str:
    """The first model of ``url``'s ``GET /v1/models``; ``"default"`` when it lists none (the chat
    check that follows then says what is wrong with the target)."""
    key = os.environ.get(api_key_env) if api_key_env else None
    try:
        resp = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=10)
        return str(resp.json()["data"][0]["id"]) if resp.status_code == 200 else "default"
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
        return "default"


@dataclass(frozen=True)
class ChatWorkload:
    """What the ``openai-chat`` users send: a dataset or synthetic prompts, conversations, a shared
    prefix, or a trace replayed (see :mod:`capkit.loadgen.openai_chat`)."""

    prompts: Path | None = None
    max_tokens: int | None = None
    turns: LengthDist | None = None
    input_tokens: LengthDist | None = None
    output_tokens: LengthDist | None = None
    prefix_share: float = 0.0
    prefix_tokens: int = 0
    trace: Path | None = None
    trace_scale: float = 1.0
    seed: int = 0

    def check(self) -> list[TraceRequest] | None:
        """Read the dataset and the trace whole, refuse what cannot go together; the trace's requests.

        Raises :class:`ConfigError` with one line (a bad line: its file and number) before anything starts.
        """
        given = {"--prompts": self.prompts, "--max-tokens": self.max_tokens, "--turns": self.turns,
                 "--input-tokens": self.input_tokens, "--output-tokens": self.output_tokens}
        if self.trace is not None:
            clash = [k for k, v in given.items() if v is not None]
            if clash:
                raise ConfigError(f"--trace gives every request's lengths: leave out {', '.join(clash)}")
        if self.prompts is not None and self.input_tokens is not None:
            raise ConfigError("--input-tokens makes synthetic prompts: leave out --prompts (or --input-tokens)")
        if self.max_tokens is not None and self.output_tokens is not None:
            raise ConfigError("--output-tokens draws max_tokens per request: leave out --max-tokens")
        if self.prompts is not None:
            dataset = load_dataset(self.prompts)
            if self.turns is not None and any(len(c.turns) > 1 for c in dataset):
                raise ConfigError(f"--turns: the conversations of {self.prompts} have their own turns (replayed "
                                  f"as recorded); leave out --turns")
        return load_trace(self.trace, scale=self.trace_scale) if self.trace is not None else None

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {"CAPKIT_OPENAI_SEED": str(self.seed)}
        if self.prompts is not None:
            env["CAPKIT_OPENAI_PROMPTS"] = str(resolve(self.prompts).resolve())
        if self.max_tokens is not None:
            env["CAPKIT_OPENAI_MAX_TOKENS"] = str(self.max_tokens)
        for key, dist in (("TURNS", self.turns), ("INPUT_TOKENS", self.input_tokens),
                          ("OUTPUT_TOKENS", self.output_tokens)):
            if dist is not None:
                env[f"CAPKIT_OPENAI_{key}"] = dist.to_text()
        if self.prefix_tokens:
            env["CAPKIT_OPENAI_PREFIX"] = f"{self.prefix_share:g},{self.prefix_tokens}"
        if self.trace is not None:
            env["CAPKIT_TRACE"] = str(self.trace.resolve())
            env["CAPKIT_TRACE_SCALE"] = f"{self.trace_scale:g}"
        return env

    def notes(self) -> dict:
        return {"prompts": str(self.prompts) if self.prompts else ("synthetic" if self.input_tokens else "built-in"),
                "max_tokens": self.max_tokens, "turns": self.turns.to_text() if self.turns else "1",
                "input_tokens": self.input_tokens.to_text() if self.input_tokens else None,
                "output_tokens": self.output_tokens.to_text() if self.output_tokens else None,
                "shared_prefix": f"{self.prefix_share:g},{self.prefix_tokens}" if self.prefix_tokens else None,
                "trace": str(self.trace) if self.trace else None,
                "trace_scale": self.trace_scale if self.trace else None}


def parse_prefix(text: str | None) -> tuple[float, int]:
    """``--shared-prefix SHARE,TOKENS`` → (share, tokens); (0, 0) when not given; ConfigError otherwise."""
    if text is None:
        return 0.0, 0
    share_s, _, tokens_s = text.partition(",")
    try:
        share, tokens = float(share_s), int(tokens_s)
    except ValueError:
        share, tokens = -1.0, 0
    if not (0 < share <= 1 and tokens >= 1):
        raise ConfigError(f"--shared-prefix {text!r} is not SHARE,TOKENS with 0 < SHARE ≤ 1 and TOKENS ≥ 1 "
                          f"(example: --shared-prefix 0.5,1000: half the conversations open with the same "
                          f"1000-token system prompt)")
    return share, tokens


def trace_plan(trace: list[TraceRequest], *, seed: int = 0) -> StagePlan:
    """The one stage that replays ``trace``: up to a second to its clock's next whole second (where the
    replay starts), its length, a tail for the last answers (max(3 s, 10 %)); users enough for 4× its
    busiest second (at least 16); no warm-up trimmed."""
    duration = trace[-1].at_s
    users = min(max(16, 4 * peak_arrivals(trace)), 2000)
    stage = Stage(users=users, seconds=math.ceil(1 + duration + max(3.0, 0.1 * duration)),
                  rate=len(trace) / max(duration, 1.0), trace=True)
    return StagePlan(stages=(stage,), warmup_s=0.0, seed=seed)


def openai_env(*, model: str, workload: ChatWorkload, api_key_env: str | None, think: str | None) -> dict[str, str]:
    """The environment of the ``openai-chat`` locustfile (see :mod:`capkit.loadgen.openai_chat`)."""
    env = {"CAPKIT_OPENAI_MODEL": model, **workload.env()}
    if api_key_env:
        env["CAPKIT_OPENAI_API_KEY_ENV"] = api_key_env  # the name only: the key stays in the environment
    if think:
        env["CAPKIT_THINK"] = think
    return env


def run_openai_chat(*, store: Store, target: str, plan: StagePlan, runs_dir: Path, model: str,
                    workload: ChatWorkload = ChatWorkload(), api_key_env: str | None = None,
                    slo: Slo | None = None, think: str | None = None, pid: int | None = None,
                    prometheus: str | None = None, metrics: list[str] | None = None, processes: int = 1,
                    sample_interval_s: float = 1.0, say: Callable[[str], None] = print,
                    criteria: Criteria = DEFAULT_CRITERIA, limits: dict | None = None,
                    server: str | None = None) -> RunResult:
    """Drive ``target``'s ``/v1/chat/completions`` through ``plan`` with every token timed; store it.

    ``workload`` is checked first (:meth:`ChatWorkload.check`); ``limits`` are the soft limits of
    ``metrics`` series (``--limit``, ``--server``), stored with the run."""
    if api_key_env and not os.environ.get(api_key_env):
        raise ConfigError(f"--api-key-env {api_key_env}: that environment variable is not set")
    workload.check()
    check_openai_target(target, model=model, api_key=os.environ.get(api_key_env) if api_key_env else None)
    scrapers = prepare_collectors(pid=pid, prometheus=prometheus, metrics=metrics)
    run_id = new_run_id()
    env = openai_env(model=model, workload=workload, api_key_env=api_key_env, think=think)
    if slo is not None:
        env["CAPKIT_SLO"] = json.dumps(slo.to_dict())
    spec = RunSpec(run_id=run_id, target=target, scenario="openai-chat", plan=plan, processes=processes,
                   sample_interval_s=sample_interval_s, criteria=criteria,
                   notes={"model": model, **workload.notes(), "think": think or "0", "pid": pid,
                          "prometheus": prometheus, "slo": slo.to_dict() if slo else None,
                          "limits": dict(limits or {}), "server": server})
    say(f"capkit run · run {run_id} · {target} · openai-chat ({model}) · {len(plan.stages)} steps, "
        f"{plan.duration_s:.0f} s of load" + (f" · SLO {slo.to_text()}" if slo else ""))
    try:
        return run_load(spec, store=store, raw_dir=runs_dir / run_id, locustfiles=[OPENAI_CHAT],
                        service_pid=pid, env=env, on_progress=progress_printer(say), scrapers=scrapers)
    except BaseException:
        for s in scrapers:
            s.close()
        raise
