"""Table 1 printed to a log (not a terminal) keeps every number: no column is cut to the console width."""

from __future__ import annotations

import io

from rich.console import Console

from ecgkt.train.table1 import PAPER_TABLE1, ROWS, Table1, _requirement, print_table


def _table() -> Table1:
    score = {"macro_auroc": 0.7123, "ci_low": 0.6012, "ci_high": 0.8034}
    rows = [
        {
            "key": spec.key,
            "model": spec.model,
            "diagnoses": score if "diagnoses" in spec.tasks else None,
            "labs": score if "labs" in spec.tasks else None,
            "inference": _requirement(spec.inference),
            "training": _requirement(spec.training),
            "paper": PAPER_TABLE1[spec.key],
        }
        for spec in ROWS
    ]
    cohort = {"store": "s", "n_records": 10, "n_train": 6, "n_val": 2, "n_test": 2, "n_diagnosis_labels": 3}
    cohort["n_lab_labels"] = 2
    settings = {"preset": "smoke", "seed": 0, "objective": "barlow_twins", "freeze_layers": 2, "labs_encoder": "x"}
    settings |= {"confidence": 0.95, "bootstrap_resamples": 10}
    return Table1(rows=rows, cohort=cohort, settings=settings)


def test_log_output_keeps_whole_rows() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, force_terminal=False)
    print_table(console, _table())
    text = buffer.getvalue()
    assert "…" not in text
    assert text.count("0.712 [0.601, 0.803]") == 5  # every score cell, uncut
    assert "| Multimodal Lab Prediction |" in text


def test_terminal_output_is_the_rich_table() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, force_terminal=True)
    print_table(console, _table())
    assert "Model" in buffer.getvalue() and "|---|" not in buffer.getvalue()
