"""The learned parts, as ``nn.Module``s with typed configs; they never import pipelines.

- :mod:`.modeling`      the ``Pretrained`` base: ``save_pretrained``/``from_pretrained``, self-describing
  ``config.json``, the registry of model classes (:func:`~.modeling.load_pretrained`)
- :mod:`.layers`        building blocks the models share (time and 3D position embeddings, ray patches, a
  transformer block)
- :mod:`.flow`          the rectified-flow sampler (Euler steps, classifier-free guidance)
- :mod:`.depth`         monocular depth: the estimator interface, the shipped network, depth files
- :mod:`.tokenizer`     the video tokenizer (8×8 spatial, 4× temporal, causal) and diffusers VAEs as tokenizers
- :mod:`.video_model`   the camera-controlled video diffusion model (the teacher's generator)
- :mod:`.decoder`       the 3DGS decoder: latents + Plücker rays of all trajectories → 3D Gaussians
- :mod:`.decoder4d`     the time-conditioned 4D decoder
- :mod:`.text_to_image` the text-to-image model (word tokens → tokenizer latents)"""
