"""Kubernetes manifests of a scaling plan: a Deployment, its HorizontalPodAutoscaler (``autoscaling/v2``)
and, for a per-pod custom metric, the Prometheus adapter's rule that serves it (a ConfigMap).

Built as plain dicts from a :class:`~capkit.analysis.answer.scaling.ScalingPlan`, validated offline
against the Kubernetes OpenAPI schemas (``kubernetes-validate``, strict: an unknown field is an
error), written as YAML into a folder aside and moved into place, so a failure leaves nothing
half-written.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

from capkit.errors import CapkitError, ConfigError
from capkit.schemas import NotMeasured

KUBERNETES_VERSION = "1.30"  # the schemas validated against (kubernetes-validate ships 1.25 … 1.37)
ANNOTATION = "capkit.io"


class ManifestError(CapkitError):
    """A manifest capkit built does not validate against the Kubernetes schemas (a bug in capkit)."""


def cpu_quantity(cores: float) -> str:
    """Cores as a Kubernetes CPU quantity, millicores rounded up (``0.231`` → ``231m``)."""
    return f"{max(math.ceil(cores * 1000 - 1e-9), 1)}m"


def memory_quantity(mib: float) -> str:
    """MiB as a Kubernetes memory quantity, rounded up (``210.3`` → ``211Mi``)."""
    return f"{max(math.ceil(mib - 1e-9), 1)}Mi"


def value_quantity(x: float) -> str:
    """A metric's target as a quantity, in thousandths (``6.12`` → ``6120m``)."""
    return f"{max(round(x * 1000), 1)}m"


def manifests(plan, *, name: str = "capkit", image: str = "capkit-service:latest") -> dict[str, dict]:
    """The objects of ``plan`` by file name: ``deployment.yaml``, ``hpa.yaml`` and, for a custom metric,
    ``prometheus-adapter-rules.yaml``."""
    policy, pod, signal = plan.policy, plan.pod, plan.policy.signal
    labels = {"app.kubernetes.io/name": name}
    requests, notes = {}, {}
    for key, value, unit in (("cpu", pod.cpu_request, cpu_quantity), ("memory", pod.memory_request, memory_quantity)):
        if isinstance(value, NotMeasured):
            notes[f"{ANNOTATION}/{key}-request"] = str(value)
        else:
            requests[key] = unit(value)
    resources = {"limits": {"cpu": cpu_quantity(pod.cpu_limit), "memory": memory_quantity(pod.memory_limit)}}
    if requests:
        resources["requests"] = requests
    annotations = {f"{ANNOTATION}/run": plan.run_id,
                   f"{ANNOTATION}/users-per-replica": str(plan.users_per_replica), **notes}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {"replicas": policy.min_replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": name, "image": image, "resources": resources}]}}},
    }
    if signal.kind in ("cpu", "memory"):
        if not isinstance(pod.cpu_request if signal.kind == "cpu" else pod.memory_request, float):
            raise ConfigError(f"the autoscaler scales on {signal.kind} utilization, but the pod's {signal.kind} "
                              f"request is not measured")
        target = {"type": "Utilization", "averageUtilization": max(int(round(policy.target_value)), 1)}
        metric = {"type": "Resource", "resource": {"name": signal.kind, "target": target}}
    else:
        metric = {"type": "Pods", "pods": {"metric": {"name": signal.metric},
                                           "target": {"type": "AverageValue",
                                                      "averageValue": value_quantity(policy.target_value)}}}
    timing = policy.timing
    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {f"{ANNOTATION}/run": plan.run_id, f"{ANNOTATION}/signal-why": signal.why,
                                     f"{ANNOTATION}/target-users-per-replica": f"{policy.target_users:.1f}"}},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                 "minReplicas": policy.min_replicas, "maxReplicas": policy.max_replicas, "metrics": [metric],
                 "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0},
                              "scaleDown": {"stabilizationWindowSeconds": int(timing.stabilization_s)}}},
    }
    out = {"deployment.yaml": deployment, "hpa.yaml": hpa}
    if signal.kind == "pods":
        rule = {"seriesQuery": f'{signal.series}{{namespace!="",pod!=""}}',
                "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
                "name": {"as": signal.metric}, "metricsQuery": f"sum({signal.query}) by (<<.GroupBy>>)"}
        out["prometheus-adapter-rules.yaml"] = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{name}-adapter-rules", "labels": labels,
                         "annotations": {f"{ANNOTATION}/note": "merge these rules into prometheus-adapter's config"}},
            "data": {"rules.yaml": to_yaml({"rules": [rule]})},
        }
    return out


def validate(objects: dict[str, dict], version: str = KUBERNETES_VERSION) -> None:
    """Validate every object against the Kubernetes schemas of ``version``, offline; raise
    :class:`ManifestError` naming the first that does not validate."""
    import kubernetes_validate

    for file, obj in objects.items():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise ManifestError(f"{file} does not validate against Kubernetes {version}: "
                                f"{str(exc.message).splitlines()[0]}") from None


def to_yaml(obj: dict) -> str:
    """YAML as a person writes it: no anchors, multi-line strings as literal blocks."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data):
            return True

    def text(dumper, value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    return yaml.dump(obj, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=120)


def write_manifests(objects: dict[str, dict], folder: Path) -> list[Path]:
    """Validate ``objects`` and write them as YAML into ``folder`` (replaced whole: built aside, then
    moved into place). Returns the paths written."""
    validate(objects)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    aside = Path(tempfile.mkdtemp(prefix=".k8s-", dir=folder.parent))
    try:
        for file, obj in objects.items():
            (aside / file).write_text(to_yaml(obj), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        aside.rename(folder)
    except BaseException:
        shutil.rmtree(aside, ignore_errors=True)
        raise
    return [folder / file for file in objects]
