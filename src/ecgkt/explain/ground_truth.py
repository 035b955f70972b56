"""The synthetic cohort's ground truth, read as "which lab abnormalities truly drive each diagnosis".

`ecgkt synth` writes `ground_truth/graph.json`: latent states, the ICD-10 codes each state is coded
with, and each state's measured direct effect on each lab (with direction). A bundle's diagnosis
label (an ICD-10 code or one of its 3–5 character ancestors, undotted) maps to every state with a
code under it; its true drivers are the `<lab>_<direction>` labels of those states' lab effects that
the bundle predicts. Labels that map to no state, or to states without lab effects, are skipped
and counted (e.g. symptom codes, hypertension).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecgkt.errors import UserError

GRAPH_FILE = "graph.json"
SUPPORTED_SCHEMA = 1


class GroundTruthError(UserError, ValueError):
    """A ground-truth folder or graph that cannot be used."""


@dataclass(frozen=True)
class GroundTruth:
    """True lab drivers per diagnosis label (only labels with at least one driver in the bundle)."""

    drivers: dict[str, frozenset[str]]
    states: dict[str, tuple[str, ...]]
    skipped_no_state: list[str] = field(default_factory=list)
    skipped_no_lab_driver: list[str] = field(default_factory=list)


def load_graph(path: Path) -> dict[str, Any]:
    graph_path = path / GRAPH_FILE if path.is_dir() else path
    if not graph_path.is_file():
        raise GroundTruthError(
            f"{graph_path}: no ground-truth graph (expected `ecgkt synth`'s ground_truth/{GRAPH_FILE})"
        )
    try:
        graph = json.loads(graph_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise GroundTruthError(f"{graph_path}: unreadable ground-truth graph ({error})") from None
    if not isinstance(graph, dict) or graph.get("schema_version") != SUPPORTED_SCHEMA:
        version = graph.get("schema_version") if isinstance(graph, dict) else None
        raise GroundTruthError(f"{graph_path}: ground-truth schema version {version!r}, expected {SUPPORTED_SCHEMA}")
    for key in ("icd_codes", "lab_effects"):
        if not isinstance(graph.get(key), list):
            raise GroundTruthError(f"{graph_path}: ground-truth graph has no {key!r} list")
    return graph


def ground_truth_drivers(
    graph: dict[str, Any], diagnosis_labels: Sequence[str], lab_labels: Sequence[str]
) -> GroundTruth:
    try:
        return _drivers(graph, diagnosis_labels, lab_labels)
    except (KeyError, TypeError, AttributeError) as error:
        raise GroundTruthError(f"malformed ground-truth graph: {type(error).__name__} {error}") from None


def _drivers(graph: dict[str, Any], diagnosis_labels: Sequence[str], lab_labels: Sequence[str]) -> GroundTruth:
    codes_of_state: dict[str, list[str]] = {}
    for entry in graph["icd_codes"]:
        codes_of_state.setdefault(str(entry["state"]), []).extend(str(c) for c in entry.get("icd10_undotted", []))
    labs_of_state: dict[str, set[str]] = {}
    for effect in graph["lab_effects"]:
        label = f"{effect['lab']}_{effect['direction']}"
        labs_of_state.setdefault(str(effect["state"]), set()).add(label)
    available = set(lab_labels)
    drivers: dict[str, frozenset[str]] = {}
    states: dict[str, tuple[str, ...]] = {}
    no_state: list[str] = []
    no_driver: list[str] = []
    for label in diagnosis_labels:
        key = label.replace(".", "").upper()
        matched = tuple(
            sorted(state for state, codes in codes_of_state.items() if any(code.startswith(key) for code in codes))
        )
        if not matched:
            no_state.append(label)
            continue
        truth = frozenset(set().union(*(labs_of_state.get(state, set()) for state in matched)) & available)
        if not truth:
            no_driver.append(label)
            continue
        drivers[label] = truth
        states[label] = matched
    return GroundTruth(drivers=drivers, states=states, skipped_no_state=no_state, skipped_no_lab_driver=no_driver)
