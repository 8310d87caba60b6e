"""Quality, measured on held-out procedural worlds (seeds >= 1,000,000) against their exact truth
(docs/design.md §7), one module per model: :mod:`.teacher`, :mod:`.decoder`, :mod:`.decoder4d`,
:mod:`.video_teacher`, :mod:`.mesh`; :mod:`.report` averages and prints the rows. Every function returns
per-world rows (dicts of floats)."""
