"""`make bench`: capkit measured against its anchors, side by side in one run (see run.py)."""
