"""The transfer study (issue 15): which route moves tabular knowledge into an ECG-only encoder.

Modules: `splits` (rotated test folds and label fractions as derived stores), `regularised`
(L2-SP / feature-space fine-tuning), `distill` (multimodal-teacher distillation), `study` (units,
workers, resume), `report` (pooled paired differences, Markdown / JSON / plot).
"""

from ecgkt.train.transfer.study import ARMS, StudyConfig, StudyError, run_study

__all__ = ["ARMS", "StudyConfig", "StudyError", "run_study"]
