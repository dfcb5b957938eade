"""KV calculator: one case computed by hand, errors, rendering."""
import json

import pytest
from rich.console import Console

from sim.analytic.kv_memory import DEFAULT_CONTEXTS, kv_report, parse_contexts, render_kv
from sim.errors import InputError

GIB = 1024**3


def test_llama3_8b_a100_by_hand():
    r = kv_report("llama-3-8b", "a100-80g", contexts=(1000, 8192, 16384))
    # 2 x 32 layers x 8 kv heads x 128 x 2 B
    assert r["kv_bytes_per_token"] == r["kv_bytes_per_token_per_gpu"] == r["kv_bytes_per_token_replica"] == 131_072
    assert r["kv_bytes_per_block_per_gpu"] == 16 * 131_072 == 2_097_152
    # weights 8,030,261,248 x 2 B; free = 80 GiB - weights - 4 GiB
    assert r["weights_bytes_per_gpu"] == 16_060_522_496
    free = 85_899_345_920 - 16_060_522_496 - 4_294_967_296
    assert r["free_kv_bytes_per_gpu"] == free == 65_543_856_128
    assert r["free_kv_gib_per_gpu"] == pytest.approx(61.042, abs=1e-3)
    assert r["max_kv_tokens_per_replica"] == 500_059      # floor(65,543,856,128 / 131,072)
    assert r["kv_blocks_per_gpu"] == 31_253               # floor(free / 2 MiB)

    c1000, c8k, c16k = r["contexts"]
    # 1000 tokens -> 63 blocks = 1008 tokens = 132,120,576 B; 496 fit; 8 of 1008 slots wasted
    assert c1000["bytes_per_request"] == 131_072_000
    assert c1000["blocks_per_request"] == 63
    assert c1000["paged_bytes_per_request_per_gpu"] == 132_120_576
    assert c1000["max_requests_paged"] == 496
    assert c1000["paged_waste_share"] == pytest.approx(8 / 1008)
    # contiguous: 8192 (max context) x 131,072 = 1 GiB per request -> 61 fit; (8192-1000)/8192 wasted
    assert c1000["contiguous_bytes_per_request_per_gpu"] == GIB
    assert c1000["max_requests_contiguous"] == 61
    assert c1000["contiguous_waste_share"] == pytest.approx(7192 / 8192)
    assert not c1000["exceeds_max_context"]
    # 8K: both 1 GiB, no waste
    assert c8k["max_requests_paged"] == c8k["max_requests_contiguous"] == 61
    assert c8k["paged_waste_share"] == c8k["contiguous_waste_share"] == 0
    # 16K exceeds Llama-3-8B's 8192 context: flagged, allocation = the request itself
    assert c16k["exceeds_max_context"] and c16k["max_requests_paged"] == 30


def test_tp8_llama3_70b_h100():
    r = kv_report("llama-3-70b", "h100-sxm", tp=8, contexts=(8192,))
    assert r["kv_bytes_per_token"] == 327_680
    assert r["kv_bytes_per_token_per_gpu"] == 40_960
    assert r["kv_bytes_per_token_replica"] == 327_680
    assert r["weights_bytes_per_gpu"] == 17_638_426_624
    free = 85_899_345_920 - 17_638_426_624 - 4_294_967_296
    assert r["free_kv_bytes_per_gpu"] == free
    assert r["contexts"][0]["max_requests_paged"] == free // (8192 * 40_960) == 190


def test_mla_replica_counts_replication():
    r = kv_report("deepseek-v3", "h200", weight_dtype="fp8", tp=8, contexts=(4096,))
    assert r["kv_bytes_per_token"] == 70_272 and r["kv_bytes_per_token_per_gpu"] == 70_272
    assert r["kv_bytes_per_token_replica"] == 8 * 70_272
    assert r["model"]["attention"] == "mla"


def test_dtype_halves():
    a = kv_report("llama-3-8b", "h100-sxm", contexts=(4096,))
    b = kv_report("llama-3-8b", "h100-sxm", kv_dtype="fp8", contexts=(4096,))
    assert b["kv_bytes_per_token"] == a["kv_bytes_per_token"] / 2
    assert b["contexts"][0]["max_requests_paged"] >= 2 * a["contexts"][0]["max_requests_paged"]


def test_weights_do_not_fit_report_the_smallest_layout_that_does():
    # llama-3.1-405b fp16 on a 24 GiB RTX 4090: the per-token sizes are there, nothing is resident, and the
    # smallest fitting TP is the first divisor of the 128 heads whose weights/tp + 4 GiB reserve < 24 GiB
    r = kv_report("llama-3.1-405b", "rtx-4090", contexts=(4096,))
    assert not r["fits"] and "do not fit" in r["does_not_fit"]
    assert r["kv_bytes_per_token"] == 2 * 126 * 8 * 128 * 2
    assert r["free_kv_bytes_per_gpu"] == 0 and r["contexts"][0]["max_requests_paged"] == 0
    w = r["weights_bytes"]
    tp = r["smallest_fit"]["tp"]
    assert r["smallest_fit"]["pp"] == 1
    assert w / tp + 4 * GIB < 24 * GIB <= w / (tp // 2) + 4 * GIB
    ok = kv_report("llama-3.1-405b", "rtx-4090", tp=tp, contexts=(4096,))
    assert ok["fits"] and ok["smallest_fit"] is None
    assert ok["free_kv_gib_per_gpu"] == pytest.approx(r["smallest_fit"]["free_kv_gib_per_gpu"])


def test_bad_inputs():
    with pytest.raises(InputError, match="unknown model"):
        kv_report("no-such-model", "h100-sxm")
    with pytest.raises(InputError, match="unknown GPU"):
        kv_report("llama-3-8b", "v100")
    with pytest.raises(InputError, match="unknown dtype"):
        kv_report("llama-3-8b", "h100-sxm", kv_dtype="fp6")
    with pytest.raises(InputError, match="tp"):
        kv_report("llama-3-8b", "h100-sxm", tp=0)
    with pytest.raises(InputError):
        kv_report("llama-3-8b", "h100-sxm", contexts=(0,))
    with pytest.raises(InputError):
        kv_report("llama-3-8b", "h100-sxm", block_tokens=0)


def test_parse_contexts():
    assert parse_contexts("1K,8K,128K") == (1024, 8192, 131072)
    assert parse_contexts("4096, 1m") == (4096, 1024**2)
    with pytest.raises(InputError, match="not a token count"):
        parse_contexts("8KB")
    with pytest.raises(InputError):
        parse_contexts("")


def test_report_is_json_and_default_contexts():
    r = kv_report("qwen3-32b", "h20", tp=4)
    assert [c["context_tokens"] for c in r["contexts"]] == list(DEFAULT_CONTEXTS)
    json.dumps(r)


def test_render_kv():
    tables = render_kv(kv_report("llama-3-70b", "h100-sxm", tp=8, contexts=(1024, 131072)))
    assert len(tables) == 2
    con = Console(record=True, width=160)
    for t in tables:
        con.print(t)
    text = con.export_text()
    assert "llama-3-70b" in text and "327,680" in text and "40,960" in text and "(>max)" in text
