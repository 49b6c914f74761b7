"""Pretraining the ``mini`` profile's backbones on the miniature world (issue 13 and the mini-SAM issue). [ours]

Taught in notebook 01 (section "A CLIP that has learned something"); no METHOD.md step: it makes the
backbones that METHOD.md steps 1-5 run on offline.
:mod:`.clip` pretrains mini-CLIP (``python -m clipsam_lite pretrain clip``); mini-SAM's trainer lives beside it.
"""
