"""What MIMIC-IV, MIMIC-IV-ECG and MIMIC-IV-ED files look like: layouts, schemas and the lab catalogue.

Both the synthetic generator (which writes these files) and the cohort builder (which reads them)
import from here, so the two can never disagree about a column name or an item id.
"""
