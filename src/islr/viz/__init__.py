"""Figures and HTML helpers that take arrays: dataset plots (:mod:`~islr.viz.plots`) and the
self-contained page builder (:mod:`~islr.viz.htmlpage`)."""
