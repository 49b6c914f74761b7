"""The shipped mini-CLIP (issue 13): size, SHA-256 check, offline loading, untaught words, held-out margin."""

from __future__ import annotations

import json
import shutil
import socket
import warnings

import numpy as np
import pytest
import torch

from clipsam_lite.mini_clip import (
    MANIFEST_FILE,
    WEIGHTS_DIR,
    WEIGHTS_FILE,
    MiniClipChecksumError,
    UntaughtWordWarning,
    load_mini_clip,
)


@pytest.fixture(scope="module")
def mini():
    torch.set_num_threads(1)
    return load_mini_clip()


def test_shipped_weights_are_small_safetensors_with_a_manifest() -> None:
    path = WEIGHTS_DIR / WEIGHTS_FILE
    assert path.stat().st_size <= 10 * 1024 * 1024
    manifest = json.loads((WEIGHTS_DIR / MANIFEST_FILE).read_text())
    assert manifest["bytes"] == path.stat().st_size and len(manifest["sha256"]) == 64
    assert (WEIGHTS_DIR / "MODEL_CARD.md").is_file()
    assert path.read_bytes()[8:9] == b"{", "not a safetensors file (header length + JSON)"


def test_a_changed_weights_file_gives_a_clear_checksum_error(tmp_path) -> None:
    shutil.copy(WEIGHTS_DIR / MANIFEST_FILE, tmp_path / MANIFEST_FILE)
    data = bytearray((WEIGHTS_DIR / WEIGHTS_FILE).read_bytes())
    data[-1] ^= 0x01
    (tmp_path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(MiniClipChecksumError, match="SHA-256.*Restore it"):
        load_mini_clip(tmp_path / WEIGHTS_FILE)
    with pytest.raises(FileNotFoundError, match="mini-CLIP weights not found"):
        load_mini_clip(tmp_path / "nothing.safetensors")


def test_loads_offline_and_rebuilds_the_full_token_table(monkeypatch, mini) -> None:
    def no_network(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    model, tokenizer, _ = load_mini_clip()
    table = model.token_embedding.weight
    assert table.shape == (49408, 64)
    taught = torch.zeros(table.shape[0], dtype=torch.bool)
    taught[list(tokenizer.taught)] = True
    assert (table[~taught] == 0).all() and (table[taught].abs().sum(1) > 0).all()
    assert torch.equal(table, mini[0].token_embedding.weight)


def test_a_word_never_taught_is_reported_by_name(mini) -> None:
    _, tokenizer, _ = mini
    with pytest.warns(UntaughtWordWarning, match="zorblaxian"):
        tokens = tokenizer(["a photo of a damaged zorblaxian."])
    assert tokens.shape == (1, tokenizer.context_length)
    assert tokenizer.untaught_words("a photo of a flawless ring with a scratch.") == []


def test_training_free_region_auroc_beats_the_prior_on_held_out_images(mini) -> None:
    from clipsam_lite.clip_maps import anomaly_maps
    from clipsam_lite.config import get_config
    from clipsam_lite.metrics import region_auroc
    from clipsam_lite.models import Models
    from clipsam_lite.prior import prior_map
    from clipsam_lite.synthetic import HELDOUT_CATEGORIES, render_world

    model, tokenizer, pre = mini
    cfg = get_config("mini", head="training_free")
    models = Models(cfg=cfg, clip=model, tokenizer=tokenizer, preprocess=pre, sam=torch.nn.Identity(),
                    device=torch.device("cpu"), random_weights=False)
    rows = []
    for cat in HELDOUT_CATEGORIES:
        train = [render_world(cat, i, size=128, split="train", n_defects=0).image for i in range(4)]
        test = [render_world(cat, i, size=128, split="test", n_defects=1 + i % 3) for i in range(4)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntaughtWordWarning)  # held-out names were never taught
            maps = anomaly_maps(models, [s.image for s in test] + train, cat, cfg).maps
        prior = prior_map(maps[len(test):])
        masks, regions = [s.mask for s in test], [s.region for s in test]
        rows.append((region_auroc(maps[:len(test)], masks, regions), region_auroc([prior] * len(test), masks, regions)))
    model_auc, prior_auc = np.mean(rows, axis=0)
    assert model_auc > prior_auc + 0.05, rows


def test_load_models_mini_uses_the_shipped_clip_and_sam(mini) -> None:
    from clipsam_lite.models import load_models, load_sam

    m = load_models("mini", device="cpu")
    assert m.cfg.clip_image_size == 128 and m.cfg.sam_model == "mini"
    assert torch.equal(m.clip.token_embedding.weight, mini[0].token_embedding.weight)
    shipped = load_sam("mini")
    assert torch.equal(m.sam.mask_decoder.iou_token.weight, shipped.mask_decoder.iou_token.weight)
    assert not m.random_weights and "RANDOM" not in m.banner() and "pretrained" in m.banner()
