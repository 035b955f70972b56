"""Distillation of a multimodal teacher into an ECG-only student.

The teacher is the multimodal classification baseline (late fusion of the ECG and all tabular data
→ diagnoses), trained on the labelled records. The student is the ECG-only network of the signal-only
baseline, trained from scratch on every training record, labelled or not (the teacher needs only the
ECG and its tabular row, both known for unlabelled records), with

    loss = masked BCE(student logits, labels)                       (labelled records only)
         + kd_weight · T² · mean KL(Bernoulli(σ(t/T)) ‖ Bernoulli(σ(s/T)))   (Hinton et al. 2015, per label)
         + representation_weight · (1 − cos(A·h_s, h_t))            (FitNets-style hint, Romero et al. 2015)

where s, t are the student's and teacher's logits, h_s the student's ECG embedding, h_t the teacher's
fused (ECG ⊕ tabular) embedding before its head, and A a linear adapter trained with the student
and dropped afterwards. The KL term is zero exactly when the student's logits equal the teacher's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from safetensors.torch import load_file
from torch import Tensor, nn

from ecgkt.config import DataConfig
from ecgkt.evaluate.metrics import masked_bce_with_logits
from ecgkt.models.config import EcgEncoderConfig, HeadConfig, TabularEncoderConfig
from ecgkt.models.encoders import EcgEncoder, TabularEncoder
from ecgkt.models.heads import LateFusionClassifier
from ecgkt.store import FeatureGroup, Split, Store
from ecgkt.train.data import StoreDataModule, TargetName
from ecgkt.train.modules import Batch, SupervisedModule, _flatten_windows, _repeat_rows

__all__ = [
    "DistillationModule",
    "PartlyLabelledDataModule",
    "bernoulli_kd_loss",
    "cosine_hint_loss",
    "distillation_module_factory",
    "partly_labelled_datamodule_factory",
]


def bernoulli_kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """T² · mean over entries of KL(Bernoulli(σ(t/T)) ‖ Bernoulli(σ(s/T))): multi-label KD.

    Computed as BCE(s/T, p_t) − BCE(t/T, p_t) (cross-entropy minus the teacher's entropy), so it is
    exactly zero when s = t and its gradient in s is (σ(s/T) − σ(t/T)) · T / n.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} differ")
    s, t = student_logits.float() / temperature, teacher_logits.detach().float() / temperature
    p_t = torch.sigmoid(t)
    cross = F.binary_cross_entropy_with_logits(s, p_t, reduction="none")
    entropy = F.binary_cross_entropy_with_logits(t, p_t, reduction="none")
    return (cross - entropy).mean() * temperature**2


def cosine_hint_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """mean_b (1 − cos(student_b, teacher_b)), teacher detached: 0 when they point the same way."""
    if student.shape != teacher.shape:
        raise ValueError(f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} embeddings differ")
    return (1.0 - F.cosine_similarity(student.float(), teacher.detach().float(), dim=1)).mean()


class DistillationModule(SupervisedModule):
    """An ECG-only SupervisedModule (the student) trained against a frozen late-fusion teacher.

    Evaluation and prediction are the student's alone (`SupervisedModule.window_logits` on the ECG);
    the teacher and the adapter are used only in `training_step` and are not part of `net`, so the
    saved `model.safetensors` / `encoder.safetensors` are an ordinary ECG-only classifier.
    """

    def __init__(
        self,
        *,
        kd_weight: float = 1.0,
        representation_weight: float = 1.0,
        temperature: float = 2.0,
        teacher_dim: int = 1,
        **kwargs: Any,
    ) -> None:
        if min(kd_weight, representation_weight) < 0:
            raise ValueError("distillation weights must be >= 0")
        if kwargs.get("tabular_encoder") is not None:
            raise ValueError("the distillation student is ECG-only (no tabular_encoder)")
        super().__init__(**kwargs)
        self.kd_weight = kd_weight
        self.representation_weight = representation_weight
        self.temperature = temperature
        self.teacher: LateFusionClassifier | None = None
        self.adapter = nn.Linear(self.encoder.out_dim, teacher_dim)

    def attach_teacher(self, teacher: LateFusionClassifier) -> None:
        """Set the frozen teacher (not an __init__ argument: hyper-parameters must stay plain data,
        checkpoints are loaded with `weights_only=True`)."""
        if teacher.head.in_dim != self.adapter.out_features:
            raise ValueError(
                f"teacher embedding has {teacher.head.in_dim} dimensions, the adapter {self.adapter.out_features}"
            )
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
        self.teacher = teacher.eval()

    def train(self, mode: bool = True) -> DistillationModule:
        super().train(mode)
        if getattr(self, "teacher", None) is not None:
            assert self.teacher is not None
            self.teacher.eval()
        return self

    def teacher_outputs(self, x: Tensor, numeric: Tensor, categorical: Tensor) -> tuple[Tensor, Tensor]:
        """(fused embedding, logits) of the frozen teacher."""
        assert self.teacher is not None
        with torch.no_grad():
            fused = torch.cat([self.teacher.ecg_encoder(x), self.teacher.tabular_encoder(numeric, categorical)], 1)
            return fused, self.teacher.head(fused)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        x, windows = _flatten_windows(batch["x"])
        h = self.encoder(x)
        head = self.net.head
        assert isinstance(head, nn.Module)
        logits = head(h)
        loss = masked_bce_with_logits(logits.float(), batch["y"], focal_gamma=self.focal_gamma)
        self.log("train_bce", loss, on_step=False, on_epoch=True, batch_size=len(x))
        if self.teacher is not None and (self.kd_weight > 0 or self.representation_weight > 0):
            fused, teacher_logits = self.teacher_outputs(
                x, _repeat_rows(batch["numeric"], windows), _repeat_rows(batch["categorical"], windows)
            )
            if self.kd_weight > 0:
                kd = self.kd_weight * bernoulli_kd_loss(logits, teacher_logits, self.temperature)
                self.log("train_kd", kd, on_step=False, on_epoch=True, batch_size=len(x))
                loss = loss + kd
            if self.representation_weight > 0:
                hint = self.representation_weight * cosine_hint_loss(self.adapter(h), fused)
                self.log("train_hint", hint, on_step=False, on_epoch=True, batch_size=len(x))
                loss = loss + hint
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x))
        return loss

    def configure_optimizers(self) -> Any:
        # The adapter learns at the head's rate: it is outside the encoder, so SupervisedModule puts
        # it in the "head" group; the frozen teacher has no trainable parameter and is left out.
        return super().configure_optimizers()


def load_teacher(
    model_file: Path,
    *,
    encoder: EcgEncoderConfig,
    tabular_encoder: TabularEncoderConfig,
    head: HeadConfig,
    n_numeric: int,
    categorical_cardinalities: Sequence[int],
    n_labels: int,
) -> LateFusionClassifier:
    """The multimodal baseline's network from its `model.safetensors` (no pickle)."""
    teacher = LateFusionClassifier(
        EcgEncoder(encoder), TabularEncoder(n_numeric, list(categorical_cardinalities), tabular_encoder), n_labels, head
    )
    teacher.load_state_dict(load_file(str(model_file)), strict=True)
    return teacher.eval()


def distillation_module_factory(
    teacher_model: Path,
    *,
    teacher_tabular_encoder: TabularEncoderConfig,
    teacher_head: HeadConfig,
    kd_weight: float,
    representation_weight: float,
    temperature: float,
) -> Any:
    """A `SupervisedSpec.module_factory` building the student with the teacher loaded."""

    def make(**kwargs: Any) -> DistillationModule:
        n_numeric = kwargs.pop("n_numeric")
        cardinalities = kwargs.pop("categorical_cardinalities")
        kwargs.pop("tabular_encoder", None)
        teacher = load_teacher(
            teacher_model,
            encoder=EcgEncoderConfig(**kwargs["encoder"]),
            tabular_encoder=teacher_tabular_encoder,
            head=teacher_head,
            n_numeric=n_numeric,
            categorical_cardinalities=cardinalities,
            n_labels=kwargs["n_labels"],
        )
        module = DistillationModule(
            kd_weight=kd_weight,
            representation_weight=representation_weight,
            temperature=temperature,
            teacher_dim=teacher.head.in_dim,
            **kwargs,
        )
        module.attach_teacher(teacher)
        return module

    return make


class PartlyLabelledDataModule(StoreDataModule):
    """Every training record of `store` with its tabular row; labels only where `labelled_rows`.

    Unlabelled training records get all-NaN targets (masked out of the BCE) instead of being
    dropped, so the student sees them through the teacher; validation and test are unchanged.
    """

    def __init__(
        self,
        store_path: str | Path,
        data: DataConfig,
        *,
        seed: int,
        target: TargetName | None,
        tabular_groups: Sequence[FeatureGroup] | None = None,
        labelled_rows: NDArray[np.int64],
    ) -> None:
        self.labelled_rows = np.asarray(labelled_rows, dtype=np.int64)
        super().__init__(store_path, data, seed=seed, target=target, tabular_groups=tabular_groups)

    def _load_targets(self) -> NDArray[np.float32] | None:
        targets = super()._load_targets()
        if targets is None:
            return None
        train = self.store.split_indices("train")
        unlabelled = np.setdiff1d(train, self.labelled_rows)
        targets = targets.copy()
        targets[unlabelled] = np.nan
        return targets

    def split_rows(self, split: Split) -> NDArray[np.int64]:
        if split == "train":
            return self.store.split_indices("train")
        return super().split_rows(split)


def partly_labelled_datamodule_factory(labelled_store: Path) -> Any:
    """A `SupervisedSpec.datamodule_factory`: the training rows labelled in `labelled_store` (a
    derived store of the same records whose train split is the labelled subset) keep their labels."""
    labelled = Store.open(labelled_store).split_indices("train")

    def make(store_path: str | Path, data: DataConfig, **kwargs: Any) -> PartlyLabelledDataModule:
        return PartlyLabelledDataModule(store_path, data, labelled_rows=labelled, **kwargs)

    return make
