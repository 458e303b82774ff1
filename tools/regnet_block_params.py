"""Build tests/reference/regnet_block_params.json: torchvision's RegNet stage parameters for designs
drawn from the RegNet design space, ground truth for the formulas of nets/lib/regnet.net.

nets/lib/regnet.net derives each stage's width, group width and depth from depth, w_0, w_a, w_m and
group_width with `let`s; its stage depths invert torchvision's per-block capacity rule instead of
counting blocks one by one. The 15 torchvision RegNets check that on their own parameters
(tests/test_zoo.py); this script checks it on many more designs: it draws them at random
(fixed seed; two decimals for w_a and w_m, as torchvision's configurations are written), asks
torchvision's BlockParams.from_init_params for their stages, and keeps the four-stage ones (every
torchvision RegNet has four stages; the library writes four). tests/test_regnet.py binds the
library to each and compares.

Runs in the reference venv (torchvision is never a dependency of cnndsl):

    /work/refenv/bin/python tools/regnet_block_params.py
"""
import json
import os
import random
from importlib.metadata import version

from torchvision.models.regnet import BlockParams

OUT_PATH = os.path.join(os.path.dirname(__file__), "..", "tests", "reference", "regnet_block_params.json")
DESIGNS = 200
SEED = 13


def draw(rng):
    """A design near torchvision's own (depth 13..28, w_0 24..456, w_a 20..161, w_m 2.0..2.9),
    somewhat wider on every side."""
    return {
        "depth": rng.randint(10, 32),
        "w_0": 8 * rng.randint(2, 64),
        "w_a": round(rng.uniform(10.0, 200.0), 2),
        "w_m": round(rng.uniform(1.8, 3.2), 2),
        "group_width": rng.choice([8, 16, 24, 32, 48, 56, 64, 112, 120, 128, 168, 232, 264]),
    }


def main():
    rng = random.Random(SEED)
    designs, other_stage_counts, drawn = [], {}, 0
    while len(designs) < DESIGNS:
        d = draw(rng)
        drawn += 1
        bp = BlockParams.from_init_params(**d)
        if len(bp.widths) != 4:
            other_stage_counts[len(bp.widths)] = other_stage_counts.get(len(bp.widths), 0) + 1
            continue
        designs.append({**d, "widths": bp.widths, "depths": bp.depths, "group_widths": bp.group_widths})
    data = {"generated_by": "tools/regnet_block_params.py", "torchvision": version("torchvision"),
            "seed": SEED, "drawn": drawn, "other_stage_counts": other_stage_counts, "designs": designs}
    with open(OUT_PATH, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT_PATH)}: {len(designs)} four-stage designs of {drawn} drawn "
          f"(stage counts of the others: {other_stage_counts})")


if __name__ == "__main__":
    main()
