"""Training on CPS's own prompts (pretrain/sam_cascade.py): the stage prompts are exactly the cascade's,
the targets are the defects the positives fall on, and a few steps on them lower the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipsam_lite import models
from clipsam_lite.config import get_config
from clipsam_lite.cps import run_cascade
from clipsam_lite.ppg import generate_prompts
from clipsam_lite.pretrain.sam import SamTrainConfig, _cascade_loss, _encode
from clipsam_lite.pretrain.sam_cascade import cascade_prompts, noisy_map, stand_in_map
from clipsam_lite.pretrain.sam_data import world_scene
from clipsam_lite.sam_features import SamEmbedding, predictor_for
from clipsam_lite.synthetic.scenes import rng_for


@pytest.fixture(scope="module")
def scene():
    s = world_scene("disc", 4, n_defects=3)  # its first cascade gets a secondary point (shipped model)
    assert sum(k == "defect" for k in s.kinds) >= 2
    return s


def _defects(s):
    return [m for m, k in zip(s.targets, s.kinds, strict=True) if k == "defect"]


def test_stand_in_map_is_seeded_high_on_defects_and_low_elsewhere(scene):
    d = _defects(scene)
    a = stand_in_map(d, rng_for(0, "t"), miss=0.0)
    b = stand_in_map(d, rng_for(0, "t"), miss=0.0)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0
    union = np.any(np.stack(d), axis=0)
    assert a[union].mean() > a[~union].mean() + 0.3
    # a missed defect (miss=1) leaves only noise: no pixel reaches a defect's level through the gain
    none = stand_in_map(d, rng_for(0, "t"), miss=1.0)
    assert none.max() <= 0.35 + 1e-6


def test_noisy_map_without_noise_is_the_blurred_ground_truth_times_the_gain():
    gt = np.zeros((32, 32), bool)
    gt[10:20, 12:18] = True
    m = noisy_map(gt, np.random.default_rng(0), blur=1.0, noise=0.0, gain=0.5)
    from scipy import ndimage

    np.testing.assert_allclose(m, ndimage.gaussian_filter(gt.astype(np.float32), 1.0) * 0.5, atol=1e-7)


def test_cascade_prompts_are_the_cascade_stages_and_targets_the_hit_defects(scene):
    sam = models.load_sam("mini")
    cfg = get_config("mini")
    with torch.no_grad():
        feats = _encode(sam, [scene.image])
    cp = cascade_prompts(sam, feats, [scene], rng_for(5, "c"), cfg, max_sets=8)
    assert cp.prompts, "PPG found no prompt set on a planted-defect map"
    starts = [i for i, k in enumerate(cp.stage) if k == 1]
    groups = [list(range(a, b)) for a, b in zip(starts, starts[1:] + [len(cp.stage)], strict=True)]
    assert all([cp.stage[i] for i in g] in ([1], [1, 2], [1, 2, 3]) for g in groups), cp.stage
    assert [cp.stage[i] for i in groups[0]] == [1, 2, 3]
    # redo the first cascade by hand from the same stand-in map: the stage prompts are exactly its own
    s_a = stand_in_map(_defects(scene), rng_for(5, "c"))
    emb = SamEmbedding(features=feats[0], original_size=(256, 256), input_size=(256, 256), img_size=256)
    ppg = generate_prompts(s_a, cfg.replace(stages=3), emb)
    first = ppg.prompt_sets[0]
    np.testing.assert_array_equal(cp.prompts[0].points, np.asarray(first.points, float))
    np.testing.assert_array_equal(cp.prompts[0].labels, first.labels)
    with torch.no_grad():
        ref = run_cascade(predictor_for(sam, emb), s_a, first.points, first.labels, cfg.replace(stages=3))
    assert cp.mask_input[0] is None and cp.prompts[0].box is None
    n1 = len(first.labels)
    np.testing.assert_array_equal(cp.prompts[1].points[:n1], cp.prompts[0].points)  # stage 2 keeps stage 1's points
    # and adds the cascade's own secondary points (none when M1 leaves no room at d_min from the positives)
    np.testing.assert_array_equal(cp.prompts[1].points, ref.stages[1].points)
    np.testing.assert_array_equal(cp.prompts[1].labels, ref.stages[1].labels)
    assert len(cp.prompts[1].labels) == n1 + ref.stages[1].n_secondary
    np.testing.assert_array_equal(cp.prompts[2].points, ref.stages[2].points)
    np.testing.assert_array_equal(cp.mask_input[1], ref.stages[0].low_res_logits)  # logit1, exactly
    np.testing.assert_array_equal(cp.mask_input[2], ref.stages[1].low_res_logits)  # logit2
    np.testing.assert_array_equal(cp.prompts[2].box, ref.stages[2].box)  # bbox(M2) + margin
    ys, xs = np.nonzero(ref.stages[1].mask)
    x0, y0, x1, y1 = cp.prompts[2].box
    assert x0 <= xs.min() and y0 <= ys.min() and x1 >= xs.max() and y1 >= ys.max()
    # a cascade's target, at every stage: the union of the defects its PPG positives fall on
    for g in groups:
        pos = cp.prompts[g[0]].points[cp.prompts[g[0]].labels == 1]
        hit = [d for d in _defects(scene) if any(d[int(y), int(x)] for x, y in pos)]
        assert hit
        for i in g:
            np.testing.assert_array_equal(cp.target[i], np.any(np.stack(hit), axis=0))
            assert cp.image_index[i] == 0


def test_a_few_steps_on_the_cascade_loss_lower_it(scene):
    """Training the three stages on one fixed scene (the same prompts each step) lowers their loss."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sam = models.load_sam("mini")
    sam.train()
    cfg = SamTrainConfig(loss_res=128)
    opt = torch.optim.Adam(sam.mask_decoder.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        feats = _encode(sam, [scene.image])
        loss, stats = _cascade_loss(sam, feats, [scene], rng_for(5, "c"), cfg)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert set(stats) == {"casc_iou1", "casc_iou2", "casc_iou3"}
    assert losses[-1] < 0.9 * losses[0], losses
