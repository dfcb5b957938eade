"""`--trace http(s)://...`: downloaded once into the cache, resumed after a dropped connection, checksummed.

A local http.server in a thread serves the files; no outside network.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sim.cli import main
from sim.errors import InputError
from trace.formats import load_trace
from trace.remote import cached_name, fetch

ROWS = "".join(json.dumps({"timestamp": i * 100, "input_length": 512 * (1 + i % 3), "output_length": 10,
                           "hash_ids": list(range(1 + i % 3))}) + "\n" for i in range(40))
BODY = ROWS.encode()


class Server:
    """Serves BODY at any path; options: honour Range, drop the connection halfway on the first GET, 404."""

    def __init__(self, *, ranges: bool = True, drop_first: bool = False, delay_s: float = 0.0) -> None:
        self.ranges, self.drop_first, self.delay_s = ranges, drop_first, delay_s
        self.requests: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append({"path": self.path, "range": self.headers.get("Range", "")})
                time.sleep(outer.delay_s)
                if self.path.startswith("/missing"):
                    self.send_error(404, "Not Found")
                    return
                start = 0
                rng = self.headers.get("Range", "")
                if outer.ranges and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(BODY) - start))
                self.end_headers()
                if outer.drop_first and len(outer.requests) == 1:
                    self.wfile.write(BODY[start: len(BODY) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return  # the socket closes with the body half sent
                self.wfile.write(BODY[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str = "t.jsonl") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_downloads_once_with_sha256_meta_then_reuses(tmp_path: Path) -> None:
    with Server() as srv:
        p = fetch(srv.url(), cache=tmp_path, progress=None)
        assert p.read_bytes() == BODY and p.name == cached_name(srv.url()) and p.name.endswith("-t.jsonl")
        meta = json.loads(p.with_name(p.name + ".meta.json").read_text())
        assert meta["sha256"] == hashlib.sha256(BODY).hexdigest() and meta["bytes"] == len(BODY)
        assert meta["url"] == srv.url()
        assert fetch(srv.url(), cache=tmp_path, progress=None) == p
        assert len(srv.requests) == 1  # the second call used the cache
        p.write_bytes(BODY[:-5] + b"xxxxx")  # a cached copy that no longer matches its checksum is fetched again
        assert fetch(srv.url(), cache=tmp_path, progress=None).read_bytes() == BODY
        assert len(srv.requests) == 2


def test_dropped_connection_keeps_a_part_and_resumes_with_range(tmp_path: Path) -> None:
    with Server(drop_first=True) as srv:
        with pytest.raises(InputError, match=r"^http://127\.0\.0\.1:\d+/t\.jsonl: download failed after 1 "
                                             r"attempt.*bytes kept, the next run resumes"):
            fetch(srv.url(), cache=tmp_path, attempts=1, progress=None)
        name = cached_name(srv.url())
        assert _files(tmp_path) == [name + ".lock", name + ".part"]  # nothing looks complete
        assert (tmp_path / (name + ".part")).read_bytes() == BODY[: len(BODY) // 2]
        p = fetch(srv.url(), cache=tmp_path, attempts=1, progress=None)
        assert srv.requests[1]["range"] == f"bytes={len(BODY) // 2}-"
        assert p.read_bytes() == BODY
        assert _files(tmp_path) == sorted([name, name + ".meta.json", name + ".lock"])


def test_dropped_connection_resumes_within_one_call(tmp_path: Path) -> None:
    with Server(drop_first=True) as srv:
        assert fetch(srv.url(), cache=tmp_path, progress=None).read_bytes() == BODY
        assert [r["range"] for r in srv.requests] == ["", f"bytes={len(BODY) // 2}-"]


def test_server_without_range_support_restarts_the_download(tmp_path: Path) -> None:
    with Server(ranges=False) as srv:
        part = tmp_path / (cached_name(srv.url()) + ".part")
        part.write_bytes(b"stale bytes")
        assert fetch(srv.url(), cache=tmp_path, progress=None).read_bytes() == BODY
        assert srv.requests[0]["range"] == "bytes=11-"


def test_failures_are_one_line_naming_the_url(tmp_path: Path) -> None:
    with Server() as srv:
        with pytest.raises(InputError, match=r"/missing\.jsonl: download failed: HTTP 404"):
            fetch(srv.url("missing.jsonl"), cache=tmp_path, progress=None)
        with pytest.raises(InputError, match=r"more than the limit of 100 bytes"):
            fetch(srv.url(), cache=tmp_path, max_bytes=100, progress=None)
        with pytest.raises(InputError, match=r"sha256 mismatch"):
            fetch(srv.url() + "#sha256=" + "0" * 64, cache=tmp_path, progress=None)
        good = fetch(srv.url("ok.jsonl") + "#sha256=" + hashlib.sha256(BODY).hexdigest(), cache=tmp_path,
                     progress=None)
        port = srv.httpd.server_address[1]
    assert good.read_bytes() == BODY
    assert [n for n in _files(tmp_path) if not n.endswith((".lock", "ok.jsonl", "ok.jsonl.meta.json"))] == []
    with pytest.raises(InputError, match=rf"^http://127\.0\.0\.1:{port}/t\.jsonl: download failed: .*refused"):
        fetch(f"http://127.0.0.1:{port}/t.jsonl", cache=tmp_path, progress=None)  # the server is gone


def test_trace_commands_accept_urls(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KVSIM_CACHE", str(tmp_path / "cache"))
    with Server() as srv:
        w, _ = load_trace(srv.url())
        assert len(w) == 40 and w.input_tokens[:3].tolist() == [512, 1024, 1536]
        assert main(["trace", "stats", "--trace", srv.url(), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["stats"]["requests"] == 40
        assert len(srv.requests) == 1  # the cache in $KVSIM_CACHE/traces served the second read
        assert (tmp_path / "cache" / "traces" / cached_name(srv.url())).is_file()
        assert main(["trace", "stats", "--trace", srv.url("missing.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.jsonl: download failed: HTTP 404" in err[0]
    assert "https:/" not in err[0]


def test_large_downloads_print_a_progress_line(tmp_path: Path, monkeypatch) -> None:
    import trace.remote as remote

    monkeypatch.setattr(remote, "PROGRESS_MIN_BYTES", 1000)
    lines: list[str] = []
    with Server() as srv:
        fetch(srv.url(), cache=tmp_path, progress=lines.append)
    assert lines and lines[0].startswith(f"download: {srv.url()} -> {tmp_path}") and "MiB" in lines[0]


def test_parallel_runs_download_once(tmp_path: Path) -> None:
    with Server(delay_s=0.3) as srv:
        got: list[Path] = []
        threads = [threading.Thread(target=lambda: got.append(fetch(srv.url(), cache=tmp_path, progress=None)))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(got) == 2 and got[0] == got[1] and got[0].read_bytes() == BODY
    assert len(srv.requests) == 1  # the second waited on the lock, then found the cached copy
