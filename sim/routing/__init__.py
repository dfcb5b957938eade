"""Routing layer: routers that pick a worker, GPU or replica for a request."""
