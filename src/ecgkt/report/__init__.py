"""Clinical output: the 12-lead ECG on grid paper (`ecg_plot`) and the HTML / PDF report."""
