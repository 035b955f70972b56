"""Training: the data module on the store, Lightning modules, the three stages, baselines, Table 1.

Public entry points (import from the submodules; this package import stays light):
- `ecgkt.train.stages`: `run_pretrain`, `run_finetune`, `run_labs`, `run_baseline`, `run_supervised`
- `ecgkt.train.table1`: `run_benchmark` (Table 1), `assemble_je_model`
- `ecgkt.train.ablation`: `run_ablation`
"""
