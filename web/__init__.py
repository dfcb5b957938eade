"""Web UI: FastAPI app (web.app) over the same library calls as the CLI, plus one static page."""
