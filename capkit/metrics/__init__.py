"""Collectors of resource samples: process tree (psutil), network; more land with the load issue."""

from capkit.metrics.process import DbTarget, LoopbackNetworkSampler, ProcessTreeSampler

__all__ = ["DbTarget", "LoopbackNetworkSampler", "ProcessTreeSampler"]
