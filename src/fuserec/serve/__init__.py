"""Serving: the FastAPI app with the web page, over an artifact folder."""

from fuserec.serve.app import create_app
from fuserec.serve.state import ServeError, ServeLimits, ServingState

__all__ = ["ServeError", "ServeLimits", "ServingState", "create_app"]
