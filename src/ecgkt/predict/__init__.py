"""Prediction on single ECGs: the engine shared by `ecgkt predict`, `ecgkt report` and the service."""
