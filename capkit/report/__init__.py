"""`capkit report`: publish the report notebooks of a stored run as HTML.

``kernel`` starts a report kernel early, ``workspace`` builds a report aside and moves it into
place, ``pages`` merges the pages into one notebook and splits it back, ``execute`` runs it with
papermill, ``html`` converts it, ``index`` writes the landing page, ``publish`` does it all.
Nothing is imported or patched until first use.
"""
