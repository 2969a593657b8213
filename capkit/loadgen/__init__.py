"""Load generation: the code that runs inside Locust processes.

``scenarios.py`` (the reference service's users) and ``plugin.py`` (capkit's stepped shape and
per-second recorder) are locustfiles; ``arrival.py`` (the open-model pacer) uses gevent. None of
them may be imported outside a Locust process: Locust monkey-patches the interpreter at import.
This module only names their paths (for :mod:`capkit.runs`, which starts Locust).
"""

from pathlib import Path

LOADGEN_DIR = Path(__file__).resolve().parent
PLUGIN = LOADGEN_DIR / "plugin.py"
SCENARIOS = LOADGEN_DIR / "scenarios.py"
OPENAI_CHAT = LOADGEN_DIR / "openai_chat.py"  # the openai-chat scenario (any OpenAI-compatible server)
# the reference scenarios' weights when no --mix is given: every component of the service
DEFAULT_MIX = "chat=4,analytics=1,auth=1,ws=1"

__all__ = ["DEFAULT_MIX", "LOADGEN_DIR", "OPENAI_CHAT", "PLUGIN", "SCENARIOS"]
