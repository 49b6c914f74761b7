"""Shared fixtures. Tests run offline on the tiny profile (random backbones of the real architectures)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("CLIPSAM_PROFILE", "tiny")


@pytest.fixture(scope="session")
def tiny_models():
    """The tiny profile's CLIP + SAM (random, seeded weights), built once per test session."""
    from clipsam_lite.models import load_models

    return load_models("tiny", device="cpu")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One CPU thread for a module's tests (and the subprocesses they start): the same arithmetic, and no
    thread contention on a busy machine. A module opts in with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A fresh, empty $CLIPSAM_CACHE so no test sees or touches the user's real cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CLIPSAM_CACHE", str(cache))
    return cache


class DecoderSpy:
    """Counts SAM mask-decoder passes with a forward hook."""

    def __init__(self, sam):
        self.calls = 0
        self.handle = sam.mask_decoder.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.calls += 1


@pytest.fixture
def decoder_spy(tiny_models):
    """A DecoderSpy on the tiny SAM, removed after the test."""
    spy = DecoderSpy(tiny_models.sam)
    yield spy
    spy.handle.remove()
