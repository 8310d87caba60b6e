"""Simulation-ready export: a collision mesh from the Gaussians (:mod:`.mesh`, with :mod:`.tsdf` fusion and
the :mod:`.ground` plane and floor fill), one USD stage with the Gaussians, the mesh and physics
(:mod:`.stage`), and a physics check (:mod:`.drop_test`); settings in :mod:`.config`."""
