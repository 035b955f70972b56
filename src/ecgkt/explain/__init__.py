"""Explanations grounded in lab abnormalities: methods, the sparse surrogate, calibration, evaluation."""
