"""What comes in and goes out as files: user inputs (:mod:`.images`, :mod:`.video`, :mod:`.prompts`), videos
(:mod:`.video`) and Gaussians in other formats (:mod:`.export`: .splat, USD/USDZ). Standard PLY is
:mod:`lyra3d.core.gaussians`'; atomic writes are :mod:`lyra3d.core.files`'."""
