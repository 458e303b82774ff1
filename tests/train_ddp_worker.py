"""Run by tests/test_train.py under `torchrun --nproc_per_node=2`: trains a tiny net with gloo and
leaves, per rank, the sample indices it saw, the files it reports writing and its final weights in TRACE."""
import json
import os
import sys


def main(out, trace):
    import cnndsl
    import cnndsl.weights as W
    from cnndsl.train import train
    net = cnndsl.loads("input 8x8x1\nCONV(4, 3) - BN - RELU - FC(3)", path="tiny.net")
    seen = {}

    def cb(e):
        if e["event"] == "epoch":
            seen[e["epoch"]] = list(e["indices"])
    r = train(net, "synthetic:120", epochs=2, batch=8, seed=0, opt="momentum", device="cpu", out=out, callback=cb)
    rank = r["rank"]
    W.save(r["module"], os.path.join(trace, f"rank{rank}.safetensors"))
    with open(os.path.join(trace, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "world": r["world_size"], "seen": seen, "files": r["files"],
                   "val_acc": r["final"]["val_acc"]}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
