"""Traffic mixes: parsing ``--mix`` weights and the ``--design mix`` stage design.

:func:`mix_design` is the design that makes per-class demands identifiable: each loaded stage
becomes the base mix and one step per class with that class tilted halfway to all of the users
(share ``(1 + s) / 2`` for a base share ``s``; the others share the rest in the base proportions).
"""

from __future__ import annotations

from capkit.errors import ConfigError
from capkit.schemas import Stage, StagePlan, parse_mix

TILT = 0.5  # --design mix: how far the tilted class moves from its base share towards all the users

__all__ = ["TILT", "mix_design", "parse_mix"]

def mix_design(plan: StagePlan, base: dict[str, float], *, tilt: float = TILT) -> StagePlan:
    """``plan`` with every loaded stage expanded into the base mix and one tilted step per class
    (that class's share ``s`` moved ``tilt`` of the way to 1, the others the rest in the base
    proportions)."""
    classes = [c for c, w in base.items() if w > 0]
    if len(classes) < 2:
        raise ConfigError("--design mix tilts the mix between classes: give --mix with two or more classes")
    if plan.open_model or any(s.rate is not None for s in plan.stages):
        raise ConfigError("--design mix varies users per class: use user stages (USERSxSECONDS), not arrival rates")
    total = sum(base[c] for c in classes)
    stages: list[Stage] = []
    for stage in plan.stages:
        if stage.users == 0:
            stages.append(stage)
            continue
        stages.append(stage.model_copy(update={"mix": {c: base[c] / total for c in classes}}))
        for heavy in classes:
            rest, share = total - base[heavy], base[heavy] / total
            heavy_share = share + tilt * (1 - share)
            mix = {c: heavy_share if c == heavy else (1 - heavy_share) * base[c] / rest for c in classes}
            stages.append(stage.model_copy(update={"mix": mix}))
    return plan.model_copy(update={"stages": tuple(stages)})
