"""Pretraining the ``mini`` profile's backbones on the miniature world (issue 13 and issue 15). [ours]

Taught in notebook 01 (section "A CLIP that has learned something"); no METHOD.md step: it makes the
backbones that METHOD.md steps 1-5 run on offline.
:mod:`.clip` pretrains mini-CLIP
(``python -m clipsam_lite pretrain clip``); :mod:`.sam` pretrains the mini-SAM
(``python -m clipsam_lite pretrain sam --out DIR``) on the scenes and prompts of :mod:`.sam_data`,
with the batched decoder and losses of :mod:`.sam_batch`, and :mod:`.sam_eval` measures its targets.
"""
