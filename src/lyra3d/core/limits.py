"""The ranges of the numeric settings that the models and memory can take (issue 26), torch-free so that the
command line refuses a value out of range at once. :class:`lyra3d.pipelines.config.GenerateConfig` checks the
same ranges for Python callers."""

#: Most frames per trajectory (Lyra's 121; the teacher's memory grows with the frames).
MAX_FRAMES = 121
#: Largest movement factor (beyond it the cameras leave any scene) ...
MAX_MOVEMENT_FACTOR = 100.0
#: ... and the range the models were trained on (outside it: one warning line).
TRAINED_MOVEMENT = (0.25, 4.0)
#: Most sampler steps (video model, text-to-image model) and the largest guidance scale.
MAX_STEPS = 1000
MAX_GUIDANCE = 50.0
#: Most output times of one video → 4D call (each is a full decoder pass and a scene in memory).
MAX_OUTPUT_TIMES = 128
#: Most frames of a rendered video (flythrough.mp4, ``lyra3d render``: a minute at 60 fps) and its fps.
MAX_VIDEO_FRAMES = 3600
MAX_FPS = 240.0
#: Largest side of a rendered frame or an SDG input, in pixels.
MAX_SIDE = 4096
#: Most video frames read from a file (``--max-frames``).
MAX_READ_FRAMES = 10_000
#: Most worlds (or clips) of one dataset, SDG or evaluation run.
MAX_WORLDS = 100_000
#: Most steps of per-scene 3DGS optimisation (``--optimize-steps``; :mod:`lyra3d.pipelines.optimize`).
MAX_OPTIMIZE_STEPS = 100_000
