"""Cohort builder: raw MIMIC-IV-ECG / MIMIC-IV / MIMIC-IV-ED folders → a dataset store (MDS-ED protocol).

Public entry point: `ecgkt.cohort.pipeline.build_store(folders, out, config)`; see docs/data.md.
"""
