"""Training, one module per model (every run resumable from its folder): :mod:`.depth`, :mod:`.tokenizer`,
:mod:`.video_model`, :mod:`.text_to_image` on procedural worlds, and :mod:`.decoder`, the 3DGS / 4D
decoder by self-distillation on SDG; :mod:`.common` is what every run shares."""
