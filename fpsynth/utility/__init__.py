"""``fpsynth utility``: does the synthetic dataset make a better palsy grader? Train on synthetic, test on real.

Modules, each with one job: :mod:`config` (the ``[utility]`` section), :mod:`tasks` (labels),
:mod:`leaks` (the leak rules, enforced), :mod:`features` (geometry features from 68 landmarks),
:mod:`graders` (geometry and appearance graders as plain functions over arrays), :mod:`regimes`
(real only, synthetic only, real + synthetic at ratios), :mod:`metrics` (metrics and bootstrap
CIs over test subjects), :mod:`benchmark` (the protocol over arrays), :mod:`run` (the stage).
"""
