"""Load generation: Locust scenarios, shapes and the recorder plugin.

Only :mod:`capkit.load.runner` and :mod:`capkit.load.recorder` may be imported outside a
Locust process; ``scenarios.py`` and ``plugin.py`` are locustfiles and ``arrival.py`` (the
open-model pacer) uses gevent.
"""
