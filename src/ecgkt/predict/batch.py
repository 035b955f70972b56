"""Batch prediction and its output formats (JSON, CSV), shared by `ecgkt predict` and tests.

JSON is the engine's `PredictionResult` as is (the service returns the same object), one object for
a single file or an array for a batch. CSV is one row per ECG, columns in the bundle's label order,
so a batch over thousands of records loads straight into a data frame:
`source, n_windows, notes, dx:<code>:probability, dx:<code>:positive, dx:<code>:supporting_labs, …,
lab:<label>:probability, lab:<label>:positive`. Supporting labs are `label=score` joined by `; `.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ecgkt.atomic_files import write_text_atomically
from ecgkt.predict.engine import PredictionResult, Predictor
from ecgkt.signals.readers import EcgInputError


@dataclass
class BatchOutcome:
    results: list[PredictionResult] = field(default_factory=list)
    errors: list[EcgInputError] = field(default_factory=list)


def predict_many(
    predictor: Predictor,
    paths: Sequence[Path],
    reader_kwargs: Mapping[str, Any],
    *,
    skip_errors: bool = False,
    console: Console | None = None,
) -> BatchOutcome:
    """Predict every path in order, with a progress bar on stderr for more than one input.

    Without `skip_errors` the first bad input raises its `EcgInputError` (naming the file); with it,
    each bad input is printed as a yellow line, collected in `errors`, and skipped.
    """
    console = console or Console(stderr=True)
    outcome = BatchOutcome()
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True, disable=len(paths) < 2) as progress:
        task = progress.add_task("predicting", total=len(paths))
        for path in paths:
            try:
                outcome.results.append(predictor.predict_path(path, **reader_kwargs))
            except EcgInputError as error:
                if not skip_errors:
                    raise
                outcome.errors.append(error)
                console.print(f"[yellow]skipped:[/] {error}", highlight=False, soft_wrap=True)
            progress.advance(task)
    return outcome


def results_to_json(results: Sequence[PredictionResult], single: bool) -> str:
    payload: Any = (
        results[0].model_dump(mode="json")
        if single and len(results) == 1
        else [r.model_dump(mode="json") for r in results]
    )
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def results_to_csv(results: Sequence[PredictionResult], predictor: Predictor) -> str:
    manifest = predictor.manifest
    header = ["source", "n_windows", "notes"]
    for code in manifest.diagnosis_labels:
        header += [f"dx:{code}:probability", f"dx:{code}:positive", f"dx:{code}:supporting_labs"]
    for label in manifest.lab_labels:
        header += [f"lab:{label}:probability", f"lab:{label}:positive"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for result in results:
        by_code = {d.code: d for d in result.diagnoses}
        by_lab = {lab.label: lab for lab in result.labs}
        row: list[object] = [result.source, result.n_windows, " | ".join(result.notes)]
        for code in manifest.diagnosis_labels:
            d = by_code[code]
            support = "; ".join(f"{s.label}={s.score:.4f}" for s in d.supporting_labs)
            row += [f"{d.probability:.6f}", int(d.positive), support]
        for label in manifest.lab_labels:
            lab = by_lab[label]
            row += [f"{lab.probability:.6f}", int(lab.positive)]
        writer.writerow(row)
    return buffer.getvalue()


def write_output(
    results: Sequence[PredictionResult], predictor: Predictor, output_format: str, *, single: bool, out: Path | None
) -> str:
    """Format the results; when `out` is given, also write them there atomically."""
    if output_format == "fhir":  # FHIR R4 DiagnosticReport Bundle (ecgkt.fhir)
        from ecgkt.fhir import diagnostic_report_bundle

        text = json.dumps(diagnostic_report_bundle(results), indent=2) + "\n"
    else:
        text = results_to_json(results, single) if output_format == "json" else results_to_csv(results, predictor)
    if out is not None:
        write_text_atomically(out, text, newline="")
    return text
