"""Pretraining the ``mini`` profile's backbones on the miniature world (issue 13 and the mini-SAM issue). [ours]

:mod:`.clip` pretrains mini-CLIP (``python -m clipsam_lite pretrain clip``); mini-SAM's trainer lives beside it.
"""
