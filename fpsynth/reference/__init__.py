"""Reference parity support: the deterministic weights recipe and readers of the reference fixtures.

The reference fixtures (``../shared/fixtures/reference``, see its README) were made by running the
authors' code (CCFExp, DCFace, AdaFace, pytorch_face_landmark) on synthetic weights and inputs.
:mod:`fpsynth.reference.recipe` rebuilds those weights from key names and shapes;
:mod:`fpsynth.reference.fixtures` locates and reads the files.
"""
