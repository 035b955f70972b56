"""ECG signal handling shared by the cohort builder and inference: lead names, preprocessing, readers."""
