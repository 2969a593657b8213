"""Raw record formats shared by the load generator, the collectors, the orchestrator and the analysis.

``histograms`` encodes and merges HDR latency histograms, ``seconds`` aggregates request events
into per-second, per-endpoint rows, ``jsonl`` appends and reads the raw run files. Pure Python:
no Locust, no pandas.
"""
