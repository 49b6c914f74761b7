"""clipsam-lite: zero-shot anomaly segmentation with CLIP and SAM, built step by step.

Taught in every notebook (each imports the module of its idea); METHOD.md steps 1-5 map onto the
modules listed in the README's "How the code is organised".

The method is Hou et al., "Enhancing Zero-Shot Anomaly Detection: CLIP-SAM Collaboration with
Cascaded Prompts" (PRCV 2024). Each module holds one idea of it; the notebooks teach them in order.
"""

__version__ = "0.1.0"
