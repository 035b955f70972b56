"""Evaluation: masked multi-label metrics (`metrics`) and calibration (`calibration`)."""
