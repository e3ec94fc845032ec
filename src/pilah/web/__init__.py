"""Pilah as a static web app that runs the model in the browser, offline after the first visit (docs/web.md)."""
