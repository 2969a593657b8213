"""capkit: measured capacity planning for HTTP services.

Nothing happens at import: settings, engines and Locust are created only when asked for.
"""

__version__ = "0.1.0"
