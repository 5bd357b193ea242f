"""The report stage: report.json and a self-contained report.html (``fpsynth report``).

- ``run``: the stage (what exists is evaluated: a generated dataset and/or a trained checkpoint).
- ``sources``, ``dataset``: finding and reading the artifacts of prepare, train and generate.
- ``networks``: the metric networks of one report, each present or missing (never substituted).
- ``evaluate``: one streaming pass of every per-image metric over an evaluation set.
- ``afid``: the paper's aligned FID (two transfer passes per test patient).
- ``privacy``: nearest training subject of every generated image.
- ``summary``: per-image values -> report.json's figures (Table 1, breakdowns, distributions).
- ``page``, ``sections``, ``grids``, ``svg``, ``markup``, ``images``: the HTML page.
"""
