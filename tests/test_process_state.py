"""The atlas leaves the process as it found it: a notebook user's autograd, transformers'
verbosity and its progress bars are the same after ``atlas.show`` and a library build."""

from __future__ import annotations

import logging

import torch
from conftest import EXAMPLES
from transformers.utils import logging as hf_logging

import atlas


def assert_autograd_works() -> None:
    """Autograd is on, and a tensor that requires a gradient gets one."""
    assert torch.is_grad_enabled()
    assert not torch.is_inference_mode_enabled()
    weight = torch.tensor([1.0, 2.0], requires_grad=True)
    (weight * weight).sum().backward()
    assert torch.equal(weight.grad, torch.tensor([2.0, 4.0]))


def test_show_and_build_leave_autograd_and_logging_as_they_were(tiny_model, tmp_path):
    model = str(tiny_model("bert"))
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity(logging.INFO)
    hf_logging.enable_progress_bar()
    try:
        assert_autograd_works()
        shown = atlas.show("The cat sat on the mat.", model=model, device="cpu")
        assert "head-view" in shown._repr_html_()
        assert_autograd_works()
        built = atlas.build(
            EXAMPLES, tmp_path / "site", model=model, device="cpu", limit=6, views=2
        )
        assert built.heads  # importance, views and the rest measured
        assert_autograd_works()
        assert hf_logging.get_verbosity() == logging.INFO
        assert hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity(verbosity)
        if not bars:
            hf_logging.disable_progress_bar()
