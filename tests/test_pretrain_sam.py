"""The mini-SAM's training code: exact batched decoder, nested loss, data with known answers, resumable loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipsam_lite.models import build_sam
from clipsam_lite.pretrain.sam import SamTrainConfig, ScenePool, train_sam
from clipsam_lite.pretrain.sam_batch import PromptBatch, assign_nested, decode_batch, mask_losses
from clipsam_lite.pretrain.sam_data import (
    TrainScene,
    correction_point,
    first_prompt,
    jitter_box,
    shapes_scene,
    world_scene,
)
from clipsam_lite.sam_features import embed_image, predictor_for
from clipsam_lite.synthetic.scenes import rng_for
from clipsam_lite.synthetic.shapes import render_shapes


@pytest.fixture(scope="module")
def perturbed_sam():
    """A mini SAM whose weights are random but not SAM's init (so no output is trivially zero)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        sam = build_sam("mini")
        for p in sam.parameters():
            p.data += 0.05 * torch.randn_like(p)
    return sam.eval()


def _batch(rows, side):
    """rows: (points list, labels list, box or None, mask or None); points padded with label -1; ``side``: the
    low-res logits' side (mask inputs of absent rows)."""
    p_max = max(len(r[1]) for r in rows) + 1
    coords = torch.full((len(rows), p_max, 2), 7.0)
    labels = torch.full((len(rows), p_max), -1)
    for i, (pts, lab, _, _) in enumerate(rows):
        # unused slots placed *before* the real points on purpose: the decoder must drop them wherever they are
        for j, (p, lb) in enumerate(zip(pts, lab, strict=True)):
            coords[i, p_max - len(pts) + j] = torch.tensor(p, dtype=torch.float32)
            labels[i, p_max - len(pts) + j] = lb
    boxes = torch.tensor(np.stack([r[2] if r[2] is not None else np.zeros(4) for r in rows]), dtype=torch.float32)
    masks = torch.tensor(np.stack([r[3] if r[3] is not None else np.zeros((1, side, side)) for r in rows]),
                         dtype=torch.float32)
    return PromptBatch(coords, labels, boxes, torch.tensor([r[2] is not None for r in rows]), masks,
                       torch.tensor([r[3] is not None for r in rows]), torch.zeros(len(rows), dtype=torch.long))


def test_batched_decoder_equals_sam_predictor(perturbed_sam):
    """Training's decoder computes exactly what SamPredictor computes, prompt by prompt, in one mixed batch."""
    image = world_scene("disc", 1).image
    emb = embed_image(perturbed_sam, image)
    predictor = predictor_for(perturbed_sam, emb)
    side = 4 * perturbed_sam.prompt_encoder.image_embedding_size[0]  # the low-res logits (128 for the mini)
    mask_in = np.random.default_rng(0).normal(0, 3, (1, side, side)).astype(np.float32)
    rows = [
        ([[100, 120]], [1], None, None),
        ([[100, 120], [30, 40]], [1, 0], None, None),
        ([[100, 120], [30, 40]], [1, 0], np.array([50.0, 60, 180, 200]), None),
        ([], [], np.array([40.0, 30, 90, 120]), None),
        ([[100, 120], [30, 40]], [1, 0], np.array([50.0, 60, 180, 200]), mask_in),
        ([[10, 200], [60, 70], [200, 10]], [1, 1, 0], None, mask_in),
    ]
    with torch.inference_mode():
        low, iou = decode_batch(perturbed_sam, emb.features[None], _batch(rows, side))
        for i, (pts, lab, box, m) in enumerate(rows):
            _, ref_iou, ref_low = predictor.predict(
                point_coords=np.array(pts, np.float32) if pts else None, point_labels=np.array(lab) if lab else None,
                box=box, mask_input=m, multimask_output=True, return_logits=True)
            assert torch.allclose(low[i, 1:], torch.as_tensor(ref_low), atol=1e-5), i
            assert torch.allclose(iou[i, 1:], torch.as_tensor(ref_iou), atol=1e-6), i
            _, ref_iou1, ref_low1 = predictor.predict(
                point_coords=np.array(pts, np.float32) if pts else None, point_labels=np.array(lab) if lab else None,
                box=box, mask_input=m, multimask_output=False, return_logits=True)
            assert torch.allclose(low[i, :1], torch.as_tensor(ref_low1), atol=1e-5), i


def test_assign_nested_picks_the_best_pair_of_distinct_outputs():
    small = torch.tensor([[0.1, 5.0, 0.2]])
    large = torch.tensor([[0.3, 9.0, 4.0]])  # best alone is output 0 for both: not allowed
    loss, a, b = assign_nested(small, large)
    # pairs: (0,1) 9.1, (0,2) 4.1, (1,0) 5.3, (1,2) 9.0, (2,0) 0.5, (2,1) 9.2
    assert a.item() == 2 and b.item() == 0 and loss.item() == pytest.approx(0.5)


def test_mask_loss_is_small_for_the_right_mask_and_large_for_the_wrong_one():
    target = torch.zeros(1, 16, 16, dtype=torch.bool)
    target[0, 4:10, 4:10] = True
    good = torch.where(target, 10.0, -10.0)
    assert mask_losses(good, target).item() < 0.01
    assert mask_losses(-good, target).item() > 1.0


def test_shapes_targets_are_exact_and_marks_sit_inside_their_shape():
    seen_mark = False
    for i in range(6):
        s = render_shapes(i, seed=5)
        again = render_shapes(i, seed=5)
        assert np.array_equal(s.image, again.image)
        shapes = [t for t, k in zip(s.targets, s.kinds, strict=True) if k == "shape"]
        for a in range(len(shapes)):  # visible regions of distinct shapes never overlap
            for b in range(a + 1, len(shapes)):
                assert not (shapes[a] & shapes[b]).any()
        for t, p, k in zip(s.targets, s.parents, s.kinds, strict=True):
            if k == "mark":
                seen_mark = True
                assert p >= 0 and (t & ~s.targets[p]).sum() == 0
                inside = s.image[t].astype(float).mean(0)
                around = s.image[s.targets[p] & ~t].astype(float).mean(0)
                assert np.abs(inside - around).max() > 0  # a mark is visible
    assert seen_mark
    with pytest.raises(ValueError, match="Unknown shape families"):
        render_shapes(0, families=("hexagon",))


def test_first_prompts_respect_their_target():
    rng = rng_for(0, "test-prompts")
    modes = set()
    for k in range(40):
        scene = world_scene("disc", k % 5) if k % 2 else shapes_scene(k)
        t = int(rng.integers(len(scene.targets)))
        p = first_prompt(rng, scene, t)
        modes.add(p.mode)
        target = scene.targets[t]
        for (x, y), lab in zip(p.points.astype(int), p.labels, strict=True):
            assert target[y, x] == bool(lab)  # positives inside, negatives outside
        if p.single_point:
            x, y = p.points[0].astype(int)
            assert all(scene.targets[v][y, x] for v in p.valid)  # every valid answer contains the click
            assert len(p.valid) in (1, 2)
    assert {"single", "points", "box"} <= modes


def test_sams_own_first_prompts_are_one_point_or_one_box():
    """``--first-prompts sam``: SAM's recipe, never several points without a previous mask."""
    rng = rng_for(0, "test-prompts-sam")
    modes = []
    for k in range(40):
        scene = world_scene("disc", k % 5) if k % 2 else shapes_scene(k)
        t = int(rng.integers(len(scene.targets)))
        p = first_prompt(rng, scene, t, "sam")
        modes.append(p.mode)
        if p.mode == "single":
            x, y = p.points[0].astype(int)
            assert len(p.points) == 1 and p.labels.tolist() == [1] and scene.targets[t][y, x]
        else:
            assert p.mode == "box" and len(p.points) == 0 and p.box is not None
    assert 10 <= modes.count("box") <= 30 and set(modes) == {"single", "box"}
    with pytest.raises(ValueError, match="first-prompt mix must be one of"):
        first_prompt(rng, shapes_scene(0), 0, "ppg")


def test_single_click_on_a_defect_accepts_the_defect_and_its_object():
    scene = world_scene("disc", 2)
    d = scene.kinds.index("defect")
    rng = rng_for(1, "nested")
    for _ in range(30):
        p = first_prompt(rng, scene, d)
        if p.single_point:
            assert p.valid == [d, 0] and scene.kinds[0] == "object"
            return
    pytest.fail("no single-point prompt in 30 draws")


def test_correction_point_labels_and_box_jitter():
    target = np.zeros((32, 32), bool)
    target[8:24, 8:24] = True
    pred = np.zeros_like(target)
    (x, y), lab = correction_point(rng_for(0, "c"), pred, target)
    assert lab == 1 and target[int(y), int(x)]
    over = target.copy()
    over[0:4, :] = True
    for s in range(5):
        (x, y), lab = correction_point(rng_for(s, "c"), over, target)
        assert lab == 0 and not target[int(y), int(x)]
    assert correction_point(rng_for(0, "c"), target, target) is None
    box = jitter_box(rng_for(0, "b"), np.array([8.0, 8, 23, 23]), 32)
    assert (box[:2] <= box[2:]).all() and np.abs(box - [8, 8, 23, 23]).max() <= 20


def test_pretraining_smoke_loss_falls_and_resume_continues(tmp_path):
    """A few steps on one fixed scene: the loss falls; killing and restarting continues from the checkpoint."""
    scene = world_scene("disc", 0)
    fixed = TrainScene(scene.image, scene.targets, scene.parents, scene.kinds, scene.source)
    cfg = SamTrainConfig(steps=24, batch_images=2, targets_per_image=2, new_scenes_per_step=1, warmup=2,
                         lr=3e-3, checkpoint_every=12, eval_every=12, log_every=4, pass_probs=(1.0, 0.0, 0.0))
    import clipsam_lite.pretrain.sam as trainer

    real = trainer.ScenePool.__init__

    def fixed_pool(self, cfg_, render=None):
        real(self, cfg_, render=lambda *a: fixed)

    trainer.ScenePool.__init__ = fixed_pool
    try:
        cfg.steps = 12
        train_sam(tmp_path, cfg, log=lambda *_: None)
        state = torch.load(tmp_path / "last.pt", weights_only=False)
        assert state["step"] == 12
        cfg.steps = 24
        lines = []
        train_sam(tmp_path, cfg, log=lines.append)
    finally:
        trainer.ScenePool.__init__ = real
    assert any("Resuming" in s and "step 12" in s for s in lines)
    import json

    rows = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert torch.load(tmp_path / "last.pt", weights_only=False)["step"] == 24
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == ["step000012.pt", "step000024.pt"]
    assert losses[-1] < 0.8 * losses[0], losses


def test_scene_pool_is_deterministic_and_reuses_recent_scenes():
    calls = []

    def render(step, slot, seed, share):
        calls.append((step, slot))
        return TrainScene(np.full((4, 4, 3), step * 64 + slot, np.uint8), [np.eye(4, dtype=bool)], [-1], ["shape"])

    cfg = SamTrainConfig(batch_images=6, new_scenes_per_step=2, pool_window=10)
    a, b = ScenePool(cfg, render), ScenePool(cfg, render)
    for step in range(8):
        assert a.ids(step) == b.ids(step)
        ids = a.ids(step)
        assert ids[:2] == [2 * step, 2 * step + 1] and all(max(0, 2 * step - 10) <= k < 2 * step or step == 0
                                                           for k in ids[2:])
        scenes = a.batch(step)
        assert [int(s.image[0, 0, 0]) for s in scenes] == [(k // 64) * 64 + k % 64 for k in ids]
    assert len(calls) == len(set(calls))  # each scene rendered once


def test_cli_refuses_bad_steps_before_any_work(tmp_path, capsys):
    from clipsam_lite.__main__ import main

    assert main(["pretrain", "sam", "--out", str(tmp_path / "run"), "--steps", "0"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resuming_with_another_architecture_is_refused(tmp_path):
    torch.save({"config": {"arch": "tiny"}}, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="trained with arch 'tiny'"):
        train_sam(tmp_path, SamTrainConfig(arch="mini", steps=1), log=lambda *_: None)


def test_growing_the_token_grid_keeps_every_learned_weight():
    """tiny (16 x 16 tokens) -> mini (32 x 32): grid-independent tensors are copied bit for bit, the patch
    kernel keeps its response to a flat patch, the position grid keeps its corners, other widths are refused."""
    from clipsam_lite.models import build_sam
    from clipsam_lite.pretrain.sam_grow import grow_sam_state

    torch.manual_seed(0)
    src = build_sam("tiny")
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    dst = build_sam("mini")
    assert src.prompt_encoder.image_embedding_size == (16, 16) and dst.prompt_encoder.image_embedding_size == (32, 32)
    grown = grow_sam_state(src.state_dict(), dst)
    dst.load_state_dict(grown)
    a, b = src.state_dict(), dst.state_dict()
    changed = sorted(k for k in a if a[k].shape != b[k].shape)
    assert changed == ["image_encoder.blocks.1.attn.rel_pos_h", "image_encoder.blocks.1.attn.rel_pos_w",
                       "image_encoder.patch_embed.proj.weight", "image_encoder.pos_embed"]
    assert all(torch.equal(a[k], b[k]) for k in a if k not in changed)
    # a smooth kernel (as trained ones are) keeps its response to a flat patch, sum(kernel) * value, to ~1 %
    smooth = torch.nn.functional.interpolate(torch.randn(96, 3, 4, 4), size=(16, 16), mode="bilinear")
    state = {**a, "image_encoder.patch_embed.proj.weight": smooth}
    g = grow_sam_state(state, dst)["image_encoder.patch_embed.proj.weight"]
    assert g.shape == (96, 3, 8, 8)
    err = (g.sum((1, 2, 3)) - smooth.sum((1, 2, 3))).abs()
    assert err.max() <= 0.02 * smooth.sum((1, 2, 3)).abs().mean(), err.max()
    pe_a, pe_b = a["image_encoder.pos_embed"], b["image_encoder.pos_embed"]
    assert torch.corrcoef(torch.stack([pe_b[0, ::2, ::2].flatten(), pe_a[0].flatten()]))[0, 1] > 0.9
    with pytest.raises(ValueError, match="unexpected"):
        grow_sam_state({**a, "extra.weight": torch.zeros(1)}, dst)
    with pytest.raises(ValueError, match="Cannot grow image_encoder.neck"):
        grow_sam_state({**a, "image_encoder.neck.0.weight": torch.zeros(64, 48, 1, 1)}, dst)


def test_warm_start_begins_a_new_run_from_the_grown_model(tmp_path):
    from clipsam_lite.models import build_sam

    src = build_sam("tiny")
    torch.save({"model": src.state_dict(), "step": 7, "cpu_seconds": 60.0}, tmp_path / "coarse.pt")
    scene = world_scene("disc", 0)
    fixed = TrainScene(scene.image, scene.targets, scene.parents, scene.kinds, scene.source)
    cfg = SamTrainConfig(arch="mini", steps=10, batch_images=1, targets_per_image=1, new_scenes_per_step=1,
                         warmup=1, pass_probs=(1.0, 0.0, 0.0), warm_start=str(tmp_path / "coarse.pt"))
    import clipsam_lite.pretrain.sam as trainer

    real = trainer.ScenePool.__init__
    trainer.ScenePool.__init__ = lambda self, c, render=None: real(self, c, render=lambda *a: fixed)
    lines: list[str] = []
    try:
        train_sam(tmp_path / "run", cfg, log=lines.append, stop_at=2)
    finally:
        trainer.ScenePool.__init__ = real
    assert any("Warm start" in s and "32-token grid" in s for s in lines), lines
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert state["step"] == 2 and state["cpu_seconds"] > 60.0  # stopped early; the coarse run's CPU counted
    assert state["cpu_carried"] == 60.0  # and kept apart: the summary line states this run's own CPU time
    done = next(s for s in lines if s.startswith("Done: 2 steps"))
    own = float(done.split(", ")[1].split(" CPU-minutes")[0])
    assert own < 1.0 and "with the warm start" in done, done
    assert state["config"]["loss_res"] == 128  # the mini's 128 x 128 low-res logits
    assert cfg.loss_res is None  # resolved on train_sam's own copy: the caller's config is unchanged
    key = "mask_decoder.output_upscaling.0.weight"
    trained, coarse = state["model"][key], src.state_dict()[key]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        fresh = build_sam("mini").state_dict()[key]  # what the run would have started from without the warm start
    assert (trained - coarse).abs().mean() < 0.1 * (trained - fresh).abs().mean()


@pytest.mark.parametrize("flags, message", [
    (["--lr", "0"], "--lr must be in (0, 1]"), (["--world-share", "1.5"], "--world-share must be in [0, 1]"),
    (["--arch", "vit_h"], "--arch must be tiny or mini"), (["--stop-at", "0"], "--stop-at must be >= 1"),
    (["--warm-start", "absent.pt"], "no such checkpoint file"),
    (["--cascade-share", "-0.1"], "--cascade-share must be in [0, 1]"),
    (["--first-prompts", "ppg"], "--first-prompts must be one of mixed, sam"),
])
def test_cli_refuses_bad_sam_settings_before_any_work(tmp_path, capsys, flags, message):
    from clipsam_lite.__main__ import main

    assert main(["pretrain", "sam", "--out", str(tmp_path / "run"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_damaged_or_foreign_checkpoint_is_named_with_the_fix(tmp_path):
    from clipsam_lite.pretrain.sam import export_sam_weights

    half = tmp_path / "half.pt"
    half.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(ValueError, match="cannot be read as a checkpoint.*another snapshot"):
        train_sam(tmp_path / "run", SamTrainConfig(arch="mini", steps=1, warm_start=str(half)), log=lambda *_: None)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": 1}, foreign)
    with pytest.raises(ValueError, match=r"not a checkpoint of `pretrain sam` \(no \['model'\] entry\)"):
        export_sam_weights(foreign, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
