"""Census of timm's convolutional networks: tests/reference/timm_census.json.

Every model `timm.list_models()` registers (timm 1.0.31: 1371 in 98 model files), grouped by family
(the timm model file that registers it, `timm/models/<family>.py`), sorted into

  cnn        convolutional throughout: every token mixer is a convolution or a pooling; channel
             gates count as convolutional (squeeze-and-excitation and its kin ESE, ECA, CBAM, gather-
             excite, global context; SKNet's and ResNeSt's softmax over branches; ConvNeXt's GRN;
             FocalNet's modulation; MambaOut's and StarNet's element-wise gating).
  hybrid     a convolutional network with self-attention in some blocks or in its head: its stem and
             early stages are convolutions and do most of the work, and attention (softmax over
             positions) or a state-space mixer joins later (CoAtNet and MaxViT, MobileViT,
             EfficientFormer, FastViT-SA, MobileNetV4-hybrid, BoTNet/HaloNet/LambdaNet, CLIP's
             ResNets with an attention-pool head, the R26/R50+ViT hybrids, ...). Counted, with their
             figures, because their convolutional part is most of the net and is writable; they stay
             blocked as wholes on attention, which the language does not have.
  skipped    attention-first, MLP or recurrent families (ViT, DeiT, Swin, LeViT, MLP-Mixer,
             Sequencer, ...; ATTENTION_FIRST below): named and counted only.

Which models are hybrids is decided from the modules each model holds (SELF_ATTENTION below: a
class of timm's attention, state-space or recurrent mixers), so one file can hold both (metaformer's
poolformer/convformer are CNNs, its caformer a hybrid; mobilenetv3.py's mobilenetv4_hybrid_*).

For each cnn and hybrid model, at batch 1 and the model's default input (pretrained_cfg input_size):

  params        sum of p.numel() (trainable parameters, README's convention).
  buffers       elements of the buffers (BN running statistics; num_batches_tracked counts 1 each).
  conv_fc_macs  README's counting convention, fvcore's keys (conv, linear, addmm, matmul): the
                multiply-accumulates of every convolution and every matrix product, biases not
                counted, taken from torch.utils.flop_counter.FlopCounterMode (FLOPs / 2) on a forward
                on the meta device: shapes only, no arithmetic, so a 100-GMAC net costs what a small
                one does. Equal to fvcore's totals on the nets of tests/reference/timm.json and
                torchvision.json (checked by --selfcheck). A hybrid's attention products that run as
                one fused scaled_dot_product_attention call are not matrix products to fvcore either:
                they are recorded apart as attention_macs.
  method        "meta", or "cpu" where a meta forward failed (a real forward under torch.no_grad,
                one thread, for nets up to CPU_LIMIT parameters; bigger ones record why not).

Progress is appended to a JSON-lines file (build/timm_census.progress.jsonl) after every model, so an
interrupted run resumes where it stopped (the whole census takes about 25 minutes on one thread,
mostly timm building its models). Runs in the reference venv (timm is never a dependency):

    python3 -m venv /work/refenv
    /work/refenv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm==1.0.31 fvcore safetensors lark

    /work/refenv/bin/python tools/timm_census.py              # resume, then write the JSON
    /work/refenv/bin/python tools/timm_census.py --fresh      # start over
    /work/refenv/bin/python tools/timm_census.py --selfcheck  # the counter against fvcore
"""
import argparse
import collections
import json
import os
import re
import sys
import time
from importlib.metadata import version

import timm
import torch
from timm.models import _registry
from torch.utils.flop_counter import FlopCounterMode

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
OUT = os.path.join(ROOT, "tests", "reference", "timm_census.json")
PROGRESS = os.path.join(ROOT, "build", "timm_census.progress.jsonl")
CPU_LIMIT = 150_000_000  # parameters: a real CPU forward beyond this takes minutes on a shared core

# Families whose token mixing is attention (or an MLP, an RNN, a state space) from the first stage.
ATTENTION_FIRST = {
    **dict.fromkeys(["vision_transformer", "vision_transformer_relpos", "vision_transformer_sam", "deit",
                     "beit", "eva", "cait", "xcit", "volo", "tnt", "crossvit", "convit", "naflexvit",
                     "deepseek_vit", "gemma4_vit", "qwen3_vit"], "ViT: attention over patch tokens"),
    **dict.fromkeys(["swin_transformer", "swin_transformer_v2", "swin_transformer_v2_cr", "twins", "nest",
                     "pvt_v2", "davit", "gcvit", "hiera", "hieradet_sam2", "mvitv2", "pit", "coat"],
                    "hierarchical transformer: attention in every stage"),
    "levit": "attention in every stage after a 4-conv patch stem",
    "mlp_mixer": "MLP-Mixer family: MLPs across patch tokens",
    "sequencer": "LSTMs across rows and columns",
    "efficientvim": "state-space (Mamba-style) mixers in every stage",
}
# Classes of timm's attention, state-space and recurrent mixers. Gates that timm also calls attention
# (SplitAttn, SelectiveKernelAttn) are softmaxes over branches, not positions: convolutional here.
SELF_ATTENTION = re.compile(r"Attention|Attn|SHSA|SHMA|LiteMLA|HSMSSD|LSTM|MixerBlock|LambdaLayer")
GATES = {"SplitAttn", "SelectiveKernelAttn"}
MATRIX_OPS = ("convolution", "addmm", "mm", "bmm", "baddbmm", "matmul")  # fvcore: conv, linear, addmm, matmul
ATTENTION_OPS = ("scaled_dot_product",)


def family(name):
    return _registry._model_to_module[name]


def attention_classes(model):
    return sorted({type(m).__name__ for m in model.modules()
                   if SELF_ATTENTION.search(type(m).__name__) and type(m).__name__ not in GATES})


def count_macs(model, x):
    """(conv_fc_macs, attention_macs) of one forward: FlopCounterMode's FLOPs halved."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    macs = collections.Counter()
    for op, flops in counter.get_flop_counts()["Global"].items():
        op = str(op).split(".")[1]
        key = "attention" if op.startswith(ATTENTION_OPS) else "matrix" if op in MATRIX_OPS else op
        macs[key] += flops
    unknown = set(macs) - {"attention", "matrix"}
    if unknown:
        raise RuntimeError(f"uncounted flop ops {sorted(unknown)}")
    assert macs["matrix"] % 2 == 0 and macs["attention"] % 2 == 0
    return macs["matrix"] // 2, macs["attention"] // 2


def build(name, device):
    with torch.device(device):
        return timm.create_model(name, pretrained=False).eval()


def measure(name):
    """The census record of one cnn or hybrid model: built and run on the meta device; on the CPU
    where that fails (a constructor or forward that needs values: .item(), .tolist())."""
    meta_failure = None
    try:
        model = build(name, "meta")
    except Exception as e:
        meta_failure = f"meta build failed: {type(e).__name__}: {first_line(e)}"
        torch.manual_seed(0)
        model = build(name, "cpu")
    c, h, w = model.pretrained_cfg["input_size"]
    rec = {"family": family(name), "input_hwc": [h, w, c],
           "params": sum(p.numel() for p in model.parameters()),
           "buffers": sum(b.numel() for b in model.buffers())}
    attn = attention_classes(model)
    rec["kind"] = "hybrid" if attn else "cnn"
    if attn:
        rec["self_attention"] = attn
    if meta_failure is None:
        try:
            macs, attn_macs = count_macs(model, torch.empty(1, c, h, w, device="meta"))
            rec["method"] = "meta"
        except Exception as e:
            meta_failure = f"meta forward failed: {type(e).__name__}: {first_line(e)}"
            if rec["params"] <= CPU_LIMIT:
                torch.manual_seed(0)
                model = build(name, "cpu")
    if meta_failure is not None:
        rec["meta_failure"] = meta_failure
        if rec["params"] > CPU_LIMIT:
            rec["method"], rec["macs_missing"] = "none", f"over {CPU_LIMIT:,} parameters for a CPU forward"
            return rec
        macs, attn_macs = count_macs(model.to("cpu"), torch.zeros(1, c, h, w))
        rec["method"] = "cpu"
    rec["conv_fc_macs"] = macs
    if attn_macs:
        rec["attention_macs"] = attn_macs
    return rec


def first_line(e):
    return (str(e).splitlines() or [""])[0][:160]


def load_progress(path):
    done = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by an interrupted run
                    continue
                done[rec.pop("name")] = rec
    return done


def family_table(names, records):
    fams = collections.defaultdict(collections.Counter)
    for n in names:
        fams[family(n)][records[n]["kind"]] += 1
    return {f: dict(sorted(c.items())) for f, c in sorted(fams.items())}


def run(progress_path, fresh=False, only=()):
    torch.set_num_threads(1)
    names = timm.list_models()
    if fresh and os.path.exists(progress_path):
        os.unlink(progress_path)
    done = load_progress(progress_path)
    os.makedirs(os.path.dirname(progress_path), exist_ok=True)
    todo = [n for n in names if n not in done and (not only or n in only)]
    print(f"{len(names)} models, {len(done)} done before, {len(todo)} to go", file=sys.stderr)
    t0 = time.time()
    with open(progress_path, "a") as log:
        for i, n in enumerate(todo):
            if family(n) in ATTENTION_FIRST:
                rec = {"family": family(n), "kind": "skipped"}
            else:
                t = time.time()
                try:
                    rec = measure(n)
                except Exception as e:
                    rec = {"family": family(n), "kind": "error", "error": f"{type(e).__name__}: {e}"[:300]}
                rec["seconds"] = round(time.time() - t, 2)
                print(f"[{i + 1}/{len(todo)} {time.time() - t0:6.0f}s] {n:42s} {rec['kind']:7s} "
                      f"{rec.get('params', 0):>12,} {rec.get('conv_fc_macs', 0):>16,} {rec.get('method', '')}",
                      file=sys.stderr)
            log.write(json.dumps({"name": n, **rec}) + "\n")
            log.flush()
            done[n] = rec
    return names, done


def census(names, done):
    """The JSON written to OUT, from every model's record."""
    models, skipped = {}, collections.defaultdict(list)
    for n in names:
        rec = {k: v for k, v in done[n].items() if k != "seconds"}
        if rec["kind"] == "skipped":
            skipped[rec["family"]].append(n)
        else:
            models[n] = rec
    return {
        "generated_by": "tools/timm_census.py",
        "torch": torch.__version__, "timm": timm.__version__,
        "counting": "conv_fc_macs: FlopCounterMode on the meta device, (convolution + mm/addmm/bmm FLOPs) / 2, "
                    "fvcore's conv+linear+matmul keys; at batch 1, the model's pretrained_cfg input_size",
        "totals": dict(collections.Counter(done[n]["kind"] for n in names), models=len(names),
                       families=len({family(n) for n in names})),
        "families": family_table(names, done),
        "attention_first": {f: {"why": ATTENTION_FIRST[f], "models": ms} for f, ms in sorted(skipped.items())},
        "models": models,
    }


def selfcheck():
    """The counter against fvcore's totals recorded in tests/reference (timm's and torchvision's nets)."""
    bad = 0
    timm_ref = json.load(open(os.path.join(ROOT, "tests", "reference", "timm.json")))["nets"]
    for ours, ref in timm_ref.items():
        macs, _ = count_macs(build(ref["timm_name"], "meta"), torch.empty(1, 3, 224, 224, device="meta"))
        bad += macs != ref["conv_fc_macs"]
        print(f"{ref['timm_name']:20s} {macs:>14,} fvcore {ref['conv_fc_macs']:>14,} {'ok' if macs == ref['conv_fc_macs'] else 'DIFF'}")
    import torchvision
    tv = json.load(open(os.path.join(ROOT, "tests", "reference", "torchvision.json")))["nets"]
    for name in ("resnet50", "convnext_tiny", "efficientnet_b3", "inception_v3", "regnet_y_400mf", "densenet121"):
        h, w, c = tv[name]["input_hwc"]
        kwargs = {"aux_logits": False, "init_weights": False} if name == "inception_v3" else {}
        torch.manual_seed(0)
        m = getattr(torchvision.models, name)(weights=None, **kwargs).eval()  # regnet's builder needs values
        macs, _ = count_macs(m, torch.zeros(1, c, h, w))
        bad += macs != tv[name]["conv_fc_macs"]
        print(f"{name:20s} {macs:>14,} fvcore {tv[name]['conv_fc_macs']:>14,} {'ok' if macs == tv[name]['conv_fc_macs'] else 'DIFF'}")
    return 1 if bad else 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fresh", action="store_true", help="forget the progress file and start over")
    ap.add_argument("--progress", default=PROGRESS)
    ap.add_argument("--selfcheck", action="store_true", help="compare the MAC counter with fvcore's recorded totals")
    ap.add_argument("names", nargs="*", help="measure only these (the JSON is written once every model is done)")
    args = ap.parse_args(argv)
    if args.selfcheck:
        return selfcheck()
    names, done = run(args.progress, args.fresh, set(args.names))
    missing = [n for n in names if n not in done]
    if missing:
        print(f"{len(missing)} models not measured yet; the JSON is written when all are", file=sys.stderr)
        return 0
    sys.path.insert(0, ROOT)
    from cnndsl.files import atomic_write
    data = census(names, done)
    atomic_write(OUT, (json.dumps(data, indent=1) + "\n").encode())
    print(f"wrote {os.path.relpath(OUT)}: {data['totals']}", file=sys.stderr)
    errors = [n for n in names if done[n]["kind"] == "error"]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
