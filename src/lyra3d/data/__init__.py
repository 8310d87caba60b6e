"""Data: :mod:`.worlds` (procedural worlds with exact ground truth), :mod:`.clips` (dynamic clips of them),
:mod:`.datasets` (worlds rendered to disk) and :mod:`.sdg` (the teacher's output written for training the
decoder: self-distillation data)."""
