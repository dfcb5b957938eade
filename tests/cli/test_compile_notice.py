"""The one-line compile notice names the engine a mode compiles (the cluster's takes longer)."""
from __future__ import annotations

import sim.engine as engine
from sim.cli.common import compile_notice


def test_notice_follows_the_modes_engine(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(engine, "cache_dir", lambda: tmp_path)
    (tmp_path / "node_ops.lookup-1.py311.nbi").write_text("")  # the node engine is compiled, not the cluster's
    compile_notice(True, "single")
    assert capsys.readouterr().err == ""
    compile_notice(True, "cluster")
    assert "compiling the cache engine" in capsys.readouterr().err
    (tmp_path / "cluster_kernels.acquire-1.py311.nbi").write_text("")
    compile_notice(True, "cluster")
    compile_notice(False, "pd")
    assert capsys.readouterr().err == ""
