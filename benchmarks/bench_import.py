"""Import of a full-size published CCFExp.ckpt: time and peak memory (issue 11).

    python benchmarks/bench_import.py --json out.json

The file is made here, since the real one cannot be downloaded: a torch zip written like the
authors' Lightning 1.7.1 checkpoint (``state_dict`` with every key and shape of
``CCFExp.layout.json``, values from the reference weights recipe; hyper-parameters holding a
functools.partial). Each measured step runs in a fresh process, so its peak resident memory
(VmHWM) is its own:

- read:     the file's bytes read once (the floor of any import; the file was just written, so
            from the page cache, as a second import would read it);
- import:   ``fpsynth weights import`` (safe read, key map, check, safetensors write);
- reimport: the same command again (found by sha256: hashing only);
- load:     ``fpsynth.load_model`` of the imported folder (what generate and the API do).
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = {
    "read": "import sys\nwith open(sys.argv[1], 'rb') as f:\n    while f.read(1 << 24): pass",
    "import": "import sys\nfrom fpsynth.published.importer import import_published\n"
    "import_published(sys.argv[1], sys.argv[2])",
    "load": "import sys, fpsynth\nm = fpsynth.load_model(sys.argv[2] + '/' + sys.argv[3])\n"
    "assert m.profile == 'ccfexp-authors'",
}


def make_file(path: Path) -> dict:
    import torch

    from fpsynth.reference.fixtures import read_layout
    from fpsynth.reference.recipe import recipe_tensor

    start = time.perf_counter()
    layout = read_layout("CCFExp")
    state = OrderedDict((k, recipe_tensor(k, v["shape"], v["dtype"])) for k, v in layout.items())
    made = time.perf_counter() - start
    hyper = {"optimizer": functools.partial(torch.optim.AdamW, lr=1e-4), "use_ema": True}
    torch.save(
        {
            "epoch": 9,
            "global_step": 25090,
            "pytorch-lightning_version": "1.7.1",
            "state_dict": state,
            "hyper_parameters": hyper,
        },
        path,
    )
    return {
        "tensors": len(state),
        "elements": sum(t.numel() for t in state.values()),
        "file_bytes": path.stat().st_size,
        "recipe_s": round(made, 1),
        "write_s": round(time.perf_counter() - start - made, 1),
    }


def child(step: str, *args: str) -> dict:
    """Run one step in a fresh interpreter; wall seconds and its peak RSS in MiB."""
    # VmHWM (peak resident set of this process's memory map): ru_maxrss would also count the
    # parent's peak, which Linux copies into a child at fork.
    code = (
        "import time\nt0 = time.perf_counter()\n"
        + _CHILD[step]
        + "\nimport json\nhwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]"
        "\nprint(json.dumps({'s': time.perf_counter() - t0, 'rss_mib': int(hwm.split()[1]) / 1024}))"
    )
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        src = tmp / "CCFExp.ckpt"
        made = make_file(src)
        root = tmp / "published"
        read = child("read", str(src))
        first = child("import", str(src), str(root))
        again = child("import", str(src), str(root))
        folder = next(root.iterdir()).name
        load = child("load", str(src), str(root), folder)
        out_bytes = sum(p.stat().st_size for p in (root / folder).iterdir())
    gib = made["file_bytes"] / 2**30
    result = {
        "file": made,
        "imported_bytes": out_bytes,
        "read": read,
        "import": first,
        "reimport": again,
        "load": load,
        "import_over_read": round(first["s"] / read["s"], 1),
        "import_peak_over_file": round(first["rss_mib"] / 1024 / gib, 2),
    }
    print(json.dumps(result, indent=1))
    rows = [
        ("read the file once (floor)", read),
        ("fpsynth weights import", first),
        ("import again (cached by sha256)", again),
        ("fpsynth.load_model of the import", load),
    ]
    md = [
        f"Synthetic full-size CCFExp.ckpt: {made['tensors']} tensors, {made['elements'] / 1e6:.1f}M values, "
        f"{gib:.2f} GiB; imported folder {out_bytes / 2**30:.2f} GiB.",
        "",
        "| step | seconds | peak RSS (MiB) |",
        "|---|---:|---:|",
    ]
    md += [f"| {name} | {r['s']:.1f} | {r['rss_mib']:.0f} |" for name, r in rows]
    md += [
        "",
        f"import / read = {result['import_over_read']}; import peak RSS / file size = "
        f"{result['import_peak_over_file']}",
    ]
    print("\n".join(md))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        args.json.with_suffix(".md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
