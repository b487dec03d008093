"""The engines attacks are built on, with their typed option bases.

* :mod:`~gradinv.attacks.core.options` -- ``RunOptions``, ``PixelOptions``,
  ``LabelOptions``, ``GuidedOptions``, ``GanOptions``: the frozen bases every attack's
  ``Config`` extends;
* :mod:`~gradinv.attacks.core.progress` -- the ``Callback`` type and the progress-record
  schema;
* :mod:`~gradinv.attacks.core.labels` -- label inference (iDLG, counts, RLU);
* :mod:`~gradinv.attacks.core.pixel` -- the pixel-space loop (Adam and batched L-BFGS) of
  the optimisation attacks, with :mod:`~gradinv.attacks.core.lbfgs` its L-BFGS;
* :mod:`~gradinv.attacks.core.diffusion` -- the diffusion-guided reverse process (GGDM,
  GradInvDiff, GGSS-R, FinetunedDiff);
* :mod:`~gradinv.attacks.core.gan` -- the GAN-prior search (GIAS, GGL, GIFD), with
  :mod:`~gradinv.attacks.core.cmaes` for GGL;
* :mod:`~gradinv.attacks.core.ddpm_matching` -- matching the gradient of a DDPM training
  step (GIDM, DLG-dm, InvG-dm).
"""
