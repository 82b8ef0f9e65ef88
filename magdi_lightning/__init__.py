"""magdi-lightning: distil the reasoning of several teacher LLMs into one small student.

MAGDi, TinyLLM and SIKeD share one data model (:mod:`magdi_lightning.graph`) and one
Lightning training loop; each method is a module of :mod:`magdi_lightning.methods`
following the contract of :mod:`magdi_lightning.methods.base`. docs/architecture.md
gives the package's layers.
"""

from pathlib import Path

from magdi_lightning import _compat

__version__ = "0.2.0"

#: The Hydra configuration tree (``conf/`` at the top of the repository).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"

_compat.install()
