"""mini-CLIP pretraining (issue 13): a few steps on tiny sizes make the loss fall; a killed run resumes."""

from __future__ import annotations

import json

import numpy as np
import torch

from clipsam_lite.pretrain.clip import (
    PretrainConfig,
    build_model,
    dense_loss,
    make_batch,
    patch_labels,
    pretrain_clip,
    step_loss,
)


def _loss_on(model: torch.nn.Module, tokenizer, cfg: PretrainConfig, step: int) -> float:
    model.eval()
    with torch.no_grad():
        loss, _ = step_loss(model, tokenizer, make_batch(cfg, step, 8), cfg, np.random.default_rng(0))
    return float(loss)


def test_patch_labels_mark_exactly_the_patches_a_defect_touches() -> None:
    mask = np.zeros((32, 32), dtype=bool)
    mask[9, 17] = True  # patch row 1, column 2 of a 4 x 4 grid of 8 px patches
    labels = patch_labels(mask, 8)
    assert labels.shape == (16,) and np.flatnonzero(labels).tolist() == [1 * 4 + 2]


def test_pretrain_a_few_steps_lowers_the_loss_and_resumes(tmp_path) -> None:
    torch.set_num_threads(1)
    cfg = PretrainConfig(steps=8, batch_size=8, image_size=64, lr=3e-3, warmup=1, eval_every=100, ckpt_every=4,
                         eval_images=2, categories=("ring", "dots"), heldout=("gear", "marble"))
    model, tokenizer = build_model(cfg)
    before = np.mean([_loss_on(model, tokenizer, cfg, s) for s in range(3)])
    pretrain_clip(tmp_path, PretrainConfig(**{**cfg.__dict__, "steps": 4}), progress=False, log=lambda *_: None)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["step"] == 4
    pretrain_clip(tmp_path, cfg, progress=False, log=lambda *_: None)  # continues at step 4 ("killed" after 4)
    final = torch.load(tmp_path / "final.pt", weights_only=True)
    assert final["step"] == 8 and final["seen"].sum() > 20
    model.load_state_dict(final["model"])
    after = np.mean([_loss_on(model, tokenizer, cfg, s) for s in range(3)])
    assert after < before - 0.3, (before, after)
    lines = [json.loads(x) for x in (tmp_path / "curve.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 8 and "heldout_pixel_auroc" in lines[-1] and lines[-1]["cpu_s"] > 0


def test_dense_loss_matches_a_hand_computed_cross_entropy() -> None:
    f = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # 1 image, 3 patches, D = 2
    text = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # normal, abnormal
    labels = torch.tensor([[False, True, True]])
    easy, hard = np.log1p(np.exp(-1.0)), np.log1p(np.exp(1.0))  # CE of a right / wrong patch at scale 1
    balanced = 0.5 * (easy + (hard + easy) / 2)
    assert abs(float(dense_loss([f], text, labels, 1.0)) - balanced) < 1e-5
    weighted = (easy + 3 * hard + 3 * easy) / 7
    assert abs(float(dense_loss([f, f], text, labels, 1.0, pos_weight=3.0)) - weighted) < 1e-5
