"""wandb conventions shared by every entry point.

- Mode: ``auto`` (the default) streams online only when an API key is configured
  (``WANDB_API_KEY`` or a ``wandb login`` entry in ``~/.netrc``) and otherwise writes
  offline runs to sync later, so a run never fails or hangs for want of a key.
- Group: all jobs of one Hydra multirun share a group named after the sweep directory.
- Job type: the entry point's ``task_name`` (train, eval, debate, siked).
- Config: the resolved config with secret-looking values masked (keys named like
  ``*key``/``*token``/``*secret``/``*password`` and any value equal to a secret held in
  the environment); teacher configs only name the variable holding a key.
- :func:`finish_wandb` closes the run on every exit path, so the next job of a multirun
  in the same process starts its own run.
"""

from __future__ import annotations

import netrc
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from magdi_lightning.io import write_bytes_atomically
from magdi_lightning.teachers.secrets import SCRUBBER

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

__all__ = [
    "finish_wandb",
    "redacted_config",
    "sweep_group",
    "wandb_mode",
    "wandb_run",
    "write_run_config",
]

MASK = "***"
_SECRET_KEY = re.compile(r"(api_?key|token|secret|password)$", re.IGNORECASE)
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


def wandb_mode(requested: str | None) -> str:
    """``online``/``offline``/``disabled`` as requested; ``auto`` or None decides by
    whether an API key is configured."""
    if requested not in (None, "auto"):
        return str(requested)
    return "online" if _api_key_configured() else "offline"


def _api_key_configured() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def sweep_group() -> str | None:
    """The multirun's sweep directory name (None outside a Hydra multirun)."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return os.path.basename(os.path.normpath(hydra_cfg.sweep.dir))


def redacted_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain data, with secrets masked (see the module docstring)."""
    secrets = [value for name, value in os.environ.items()
               if _SECRET_ENV.search(name) and len(value) >= 8]

    def clean(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: clean(v, str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [clean(v) for v in node]
        if isinstance(node, str):
            if _SECRET_KEY.search(key) and node:
                return MASK
            for secret in secrets:
                node = node.replace(secret, MASK)
        return node

    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    return clean(resolved)


def finish_wandb() -> None:
    """Close any wandb run so the next job of a multirun starts a fresh one."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()


@contextmanager
def wandb_run(cfg: DictConfig, output_dir: Path) -> Iterator[Run | None]:
    """A wandb run for a command that logs once at its end (``magdi-eval``,
    ``magdi-debate``), by the conventions above, finished on leaving the block; ``None``
    when wandb is disabled. (``magdi-train`` and ``magdi-siked`` log through Lightning's
    ``WandbLogger``.)"""
    mode = wandb_mode(cfg.wandb.mode)
    if mode == "disabled":
        yield None
        return
    import wandb

    run = wandb.init(project=cfg.wandb.project, mode=mode, dir=str(output_dir),
                     job_type=cfg.task_name, group=sweep_group(),
                     tags=list(cfg.get("tags") or []),
                     config=SCRUBBER.scrub(redacted_config(cfg)))
    try:
        yield run
    finally:
        run.finish()


def write_run_config(cfg: DictConfig, output_dir: Path) -> None:
    """``config.yaml`` of a run directory: the resolved config, every secret the scrubber
    knows masked, written whole or not at all (``magdi-report`` groups runs by it)."""
    text = SCRUBBER.scrub(OmegaConf.to_yaml(cfg, resolve=True))
    write_bytes_atomically(Path(output_dir) / "config.yaml", text.encode())
