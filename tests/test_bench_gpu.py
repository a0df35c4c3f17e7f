"""bench/gpu.py on a machine without a GPU: it says so in one line and exits 0 (issue 20), and
``--device cpu --smoke`` runs the whole measurement on the CPU."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import ROOT


def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU to measure")
def test_without_a_gpu_it_says_so_and_exits_0(capsys):
    assert bench().main([]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("bench/gpu.py: no CUDA GPU on this machine") and out.count("\n") == 1
    assert err == ""


def test_a_cpu_smoke_run_prints_the_ratios(capsys, tmp_path):
    from tiny_lm import make_tiny_chat_lm

    model = make_tiny_chat_lm(tmp_path / "lm")
    argv = ["--device", "cpu", "--smoke", "--model", str(model), "--generate", "2"]
    assert bench().main([*argv, "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert "8 sentences" in out and "--dtype bfloat16" in out and "--generate 2" in out
    for row in ("bare forward pass, s", "  generation, s", "build / forward"):
        assert f"| {row} |" in out
