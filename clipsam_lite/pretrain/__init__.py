"""Pretraining the mini profile's models on the synthetic world. [ours]

Taught in notebook 00 (section "The mini profile"). ``python -m clipsam_lite pretrain sam --out DIR``
trains the mini-SAM (:mod:`.sam`); the data it sees comes from :mod:`.sam_data`, its batched decoder
and losses from :mod:`.sam_batch`.
"""
