"""The pretrained recognition and feature networks, below both ``models/`` and ``metrics/``.

One module per network (IR-50, MobileFaceNet, Inception-v3, VGG16, LPIPS heads), each with the
:class:`~fpsynth.weights.WeightSpec` of its published file; :mod:`fpsynth.nets.loading` builds
and fills them, :mod:`fpsynth.nets.specs` lists every spec (``fpsynth weights``).
"""
