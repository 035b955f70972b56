"""Synthetic MIMIC-shaped cohort: latent physiology → labs, vitals, diagnoses and 12-lead ECGs."""
