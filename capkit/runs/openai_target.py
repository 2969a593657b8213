"""`capkit run --target URL --scenario openai-chat`: any OpenAI-compatible streaming server, timed per token.

The target is checked before anything is created: one streamed completion of one token must come
back as server-sent events, else the run is refused with one line (nothing is written).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import httpx

from capkit.errors import ConfigError, ServiceError
from capkit.loadgen import OPENAI_CHAT
from capkit.records.llm import Slo
from capkit.runs.orchestrator import RunResult, new_run_id, run_load
from capkit.runs.progress import progress_printer
from capkit.runs.target import check_target, prepare_collectors
from capkit.schemas import DEFAULT_CRITERIA, Criteria, RunSpec, StagePlan
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


def openai_env(*, model: str, prompts: Path | None, max_tokens: int | None, api_key_env: str | None,
               think: str | None) -> dict[str, str]:
    """The environment of the ``openai-chat`` locustfile (see :mod:`capkit.loadgen.openai_chat`)."""
    env = {"CAPKIT_OPENAI_MODEL": model}
    if prompts is not None:
        env["CAPKIT_OPENAI_PROMPTS"] = str(prompts)
    if max_tokens is not None:
        env["CAPKIT_OPENAI_MAX_TOKENS"] = str(max_tokens)
    if api_key_env:
        env["CAPKIT_OPENAI_API_KEY_ENV"] = api_key_env  # the name only: the key stays in the environment
    if think:
        env["CAPKIT_THINK"] = think
    return env


def check_prompts(path: Path | None) -> None:
    """A ``--prompts`` file that exists and holds at least one prompt, or ConfigError."""
    if path is None:
        return
    if not path.is_file():
        raise ConfigError(f"--prompts {path} does not exist (one prompt a line, or JSONL)")
    if not any(line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()):
        raise ConfigError(f"--prompts {path} holds no prompt (one prompt a line, or JSONL)")


def run_openai_chat(*, store: Store, target: str, plan: StagePlan, runs_dir: Path, model: str,
                    prompts: Path | None = None, max_tokens: int | None = None, api_key_env: str | None = None,
                    slo: Slo | None = None, think: str | None = None, pid: int | None = None,
                    prometheus: str | None = None, metrics: list[str] | None = None, processes: int = 1,
                    sample_interval_s: float = 1.0, say: Callable[[str], None] = print,
                    criteria: Criteria = DEFAULT_CRITERIA) -> RunResult:
    """Drive ``target``'s ``/v1/chat/completions`` through ``plan`` with every token timed; store it."""
    if api_key_env and not os.environ.get(api_key_env):
        raise ConfigError(f"--api-key-env {api_key_env}: that environment variable is not set")
    check_prompts(prompts)
    check_openai_target(target, model=model, api_key=os.environ.get(api_key_env) if api_key_env else None)
    scrapers = prepare_collectors(pid=pid, prometheus=prometheus, metrics=metrics)
    run_id = new_run_id()
    env = openai_env(model=model, prompts=prompts.resolve() if prompts else None, max_tokens=max_tokens,
                     api_key_env=api_key_env, think=think)
    if slo is not None:
        env["CAPKIT_SLO"] = json.dumps(slo.to_dict())
    spec = RunSpec(run_id=run_id, target=target, scenario="openai-chat", plan=plan, processes=processes,
                   sample_interval_s=sample_interval_s, criteria=criteria,
                   notes={"model": model, "prompts": str(prompts) if prompts else "built-in",
                          "max_tokens": max_tokens, "think": think or "0", "pid": pid, "prometheus": prometheus,
                          "slo": slo.to_dict() if slo else None})
    say(f"capkit run · run {run_id} · {target} · openai-chat ({model}) · {len(plan.stages)} steps, "
        f"{plan.duration_s:.0f} s of load" + (f" · SLO {slo.to_text()}" if slo else ""))
    try:
        return run_load(spec, store=store, raw_dir=runs_dir / run_id, locustfiles=[OPENAI_CHAT],
                        service_pid=pid, env=env, on_progress=progress_printer(say), scrapers=scrapers)
    except BaseException:
        for s in scrapers:
            s.close()
        raise
