"""magdi-lightning: distil the reasoning of several teacher LLMs into one small student.

MAGDi, TinyLLM and SIKeD share one data model (:mod:`magdi_lightning.graph`) and one
Lightning training loop (:mod:`magdi_lightning.module`).
"""

from pathlib import Path

__version__ = "0.1.0"

#: The Hydra configuration tree (``conf/`` at the top of the repository).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
