"""One model replica's execution: continuous batching with chunked prefill, its memory and its step costs."""
