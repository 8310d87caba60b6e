"""Pipelines: an image, a prompt or a video → a 3D (or 4D) Gaussian scene, in the style of diffusers.

::

    from lyra3d.pipelines import ImageTo3DPipeline, save_scene

    pipe = ImageTo3DPipeline.from_pretrained()            # the shipped models (or a weights folder)
    scene = pipe("photo.jpg", seed=0)                     # a path, or an image tensor (3, H, W) in [0, 1]
    save_scene(scene, "out")

One pipeline per module: :mod:`.image_to_3d`, :mod:`.text_to_3d`, :mod:`.video_to_4d`; what they share is
:mod:`.base` (loading, devices, settings), :mod:`.config` (typed settings and resolution presets),
:mod:`.weights` (weights folders), :mod:`.teacher` (depth → 3D cache → video model) and :mod:`.outputs`
(the result and its output folder).
"""

from lyra3d.pipelines.config import PRESETS, GenerateConfig, Preset, register_preset
from lyra3d.pipelines.image_to_3d import ImageTo3DPipeline
from lyra3d.pipelines.outputs import Scene, Scene4D, save_scene, save_scene4d
from lyra3d.pipelines.text_to_3d import TextTo3DPipeline
from lyra3d.pipelines.video_to_4d import VideoTo4DPipeline

__all__ = ["PRESETS", "GenerateConfig", "ImageTo3DPipeline", "Preset", "Scene", "Scene4D", "TextTo3DPipeline",
           "VideoTo4DPipeline", "register_preset", "save_scene", "save_scene4d"]
