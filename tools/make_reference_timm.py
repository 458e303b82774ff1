"""Build tests/reference/timm.json: ground truth for the zoo's nets whose twins are timm's: the lecture's
case studies and timm's convolutional families (issue 24).

The lecture notes' Dual Path Networks and SE-ResNet-50 have no torchvision twin; timm (1.0.31)
has them: dpn92 and dpn98 (timm/models/dpn.py, the MXNet original's layout) and legacy_seresnet50
(timm/models/senet.py, Cadene's port of the SENet authors' Caffe model, stride on the first 1x1 as
in the paper; timm's seresnet50 is the torchvision-style "V1.5" with the stride on the 3x3). For each,
built with pretrained=False, at batch 1 and its default_cfg input (224x224x3 for these three; each
family net at its own), the same records as tools/make_reference.py writes for torchvision (whose
helpers it uses):

  params        exact total parameter count.
  buffers       elements of the state_dict that are not parameters (BN running statistics and
                counters): a saved model file holds them too (the lecture's "model size").
  conv_fc_macs  fvcore's conv+linear total (asserted equal to the hand sum over Conv2d/Linear; where
                fvcore misses convs with padding="same", the hand sum, fvcore's kept beside it).
                DPN's classifier is a 1x1 Conv2d, so it counts as conv.
  layers        every Conv2d / MaxPool2d / AvgPool2d / AdaptiveAvgPool2d / Linear call in forward
                order, with output shape ([H, W, C]), params and MACs. timm's SEModule squeezes with
                x.mean((2, 3)), a function: no row for it.
  state_dict    [key, shape] pairs of model.state_dict(), in order.

The timm families written in the language (FAMILY_NETS: our net -> timm's model, issue 24) get two
records more, which the case studies' tests do not read:

  output        the logits' shape at batch 1 ([1000]).
  functional    every global mean and pool taken by a function rather than a module, in forward order
                (timm's SEModule and EffectiveSEModule squeeze with x.mean((2, 3), keepdim=True);
                Inception v3's blocks pool with F.avg_pool2d / F.max_pool2d): {"after": how many
                `layers` rows came before it, "type": "mean", "AvgPool2d", ..., "out": [H, W, C]}.
                The language writes a mean as GAP, a pool as the pool layer it is. A BlurPool2d (its
                F.conv2d, which fvcore counts) is a row of type "BlurPool2d" with its "macs" (BLURPOOL).

Runs in the reference venv (timm is never a dependency of cnndsl):

    /work/refenv/bin/python tools/make_reference_timm.py            # every net
    /work/refenv/bin/python tools/make_reference_timm.py NAME ...   # these; the rest kept as they are
"""
import importlib.util
import json
import os
import sys
from importlib.metadata import version

import timm
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_PATH = os.path.join(HERE, "..", "tests", "reference", "timm.json")

# our net -> timm's model name: the lecture's case studies, then the families of issue 24
CASE_STUDIES = {"dpn92": "dpn92", "dpn98": "dpn98", "se_resnet50": "legacy_seresnet50"}
FAMILY_NETS = {name: name for name in [
    # resnet.py: the "Bag of Tricks" stems and shortcuts, SE, ResNeXt (nets/lib/timm_resnet.net)
    "resnet10t", "resnet18d", "resnet26d", "resnet26t", "resnet34d", "resnet50c", "resnet50d", "resnet50t",
    "resnet101d", "resnet152d", "resnet200d", "seresnet50", "resnext50d_32x4d", "seresnext26d_32x4d",
    "seresnext50_32x4d",
    # byobnet.py: RepVGG and MobileOne with their training-time branches (nets/lib/timm_byobnet.net)
    "repvgg_a0", "mobileone_s0", "mobileone_s1",
    # vovnet.py: one-shot aggregation, V2's residuals and effective SE (nets/lib/timm_vovnet.net)
    "vovnet39a", "ese_vovnet39b", "ese_vovnet19b_dw",
    # selecsls.py, rexnet.py
    "selecsls42b", "rexnet_100", "rexnet_150",
    # ghostnet.py, dla.py
    "ghostnet_100", "dla34",
    # res2net.py, cspnet.py
    "res2net50_26w_4s", "cspresnet50", "cspdarknet53", "darknet53",
    # convmixer.py, starnet.py, fasternet.py
    "convmixer_768_32", "starnet_s1", "fasternet_t0",
    # dpn.py's other variants (nets/lib/dpn.net), inception_v4.py
    "dpn68", "dpn107", "dpn131", "inception_v4",
    # xception.py, mobilenetv3.py (PP-LCNet, MobileNetV4), hardcorenas.py
    "legacy_xception", "lcnet_100", "mobilenetv4_conv_small", "hardcorenas_a",
    # regnet.py with torchvision's width rule (nets/lib/timm_regnet.net)
    "regnety_004", "regnetx_004_tv",
    # blur pool, global response norm, space to depth, StarReLU, learnt scalar affine and asymmetric pad
    "resnetblur50", "convnextv2_atto", "tresnet_m", "poolformer_s12", "convformer_s18", "hgnetv2_b0",
    "resnetblur50d", "convnextv2_femto", "convnextv2_pico", "convnextv2_nano", "convnextv2_tiny", "poolformer_s24",
    "hgnetv2_b1", "tresnet_l", "densenetblur121d", "resnetblur18", "convformer_s36",  # (hgnetv2: nets/lib/timm_hgnetv2.net)
    # hrnet.py: several live streams (nets/lib/timm_hrnet.net)
    "hrnet_w18_small", "hrnet_w18_small_v2", "hrnet_w18", "hrnet_w18_ssld", "hrnet_w30", "hrnet_w32", "hrnet_w40",
    "hrnet_w44", "hrnet_w48", "hrnet_w48_ssld", "hrnet_w64",
    # pnasnet.py, nasnet.py: cells that read the two cells before them (nets/lib/timm_pnasnet.net, timm_nasnet.net)
    "pnasnet5large", "nasnetalarge",
    # xception_aligned.py (nets/lib/timm_xception_aligned.net)
    "xception41", "xception65", "xception71",
    # repghost.py (nets/lib/timm_repghost.net)
    "repghostnet_050", "repghostnet_058", "repghostnet_080", "repghostnet_100", "repghostnet_111",
    "repghostnet_130", "repghostnet_150", "repghostnet_200",
    # repvit.py (nets/lib/timm_repvit.net)
    "repvit_m1", "repvit_m2", "repvit_m3", "repvit_m0_9", "repvit_m1_0", "repvit_m1_1", "repvit_m1_5", "repvit_m2_3",
    # hgnet.py, v1 (nets/lib/timm_hgnet.net)
    "hgnet_tiny", "hgnet_small", "hgnet_base",
    # lcnetv2.py (nets/lib/timm_lcnetv2.net)
    "lcnetv2_small", "lcnetv2_base", "lcnetv2_large",
    # cspnext.py (nets/lib/timm_cspnext.net)
    "cspnext_tiny", "cspnext_s", "cspnext_m", "cspnext_l", "cspnext_x",
    # byobnet.py: GENet, ResNet-51-Q, RegNetZ (nets/lib/timm_byobnet.net)
    "gernet_s", "gernet_m", "gernet_l", "resnet51q", "regnetz_b16", "regnetz_c16",
    "regnetz_d8", "regnetz_d32", "regnetz_e8",
    # inception_next.py (nets/lib/timm_inception_next.net)
    "inception_next_atto", "inception_next_tiny", "inception_next_small", "inception_next_base",
    # rdnet.py (nets/lib/timm_rdnet.net)
    "rdnet_tiny", "rdnet_small", "rdnet_base", "rdnet_large",
    # issue 24's constructs (branch timma): ECA (CHANCONV) in resnet.py
    "ecaresnet26t", "ecaresnet50d", "ecaresnet50t", "ecaresnet101d", "ecaresnetlight",
    # efficientnet.py's and mobilenetv3.py's TensorFlow ports (p=tf_same; nets/lib/timm_efficientnet.net)
    "tf_mobilenetv3_large_100", "tf_mobilenetv3_small_100",
    "tf_efficientnet_b0", "tf_efficientnet_b1", "tf_efficientnet_b2", "tf_efficientnet_b3", "tf_efficientnet_b4",
    "tf_efficientnet_b5", "tf_efficientnet_b6", "tf_efficientnet_b7", "tf_efficientnet_b8",
    # resnetv2.py: pre-activation, BiT's STDCONV and GroupNorm (nets/lib/timm_resnetv2.net)
    "resnetv2_50x1_bit", "resnetv2_50", "resnetv2_50d", "resnetv2_50t", "resnetv2_101",
    # inception_resnet_v2.py (SCALE)
    "inception_resnet_v2",
    # sknet.py: selective kernels, a softmax across the paths (nets/lib/timm_sknet.net)
    "skresnet18", "skresnet34", "skresnet50", "skresnet50d", "skresnext50_32x4d",
    # resnest.py: split attention, a softmax across the radix splits (nets/lib/timm_resnest.net)
    "resnest14d", "resnest26d", "resnest50d", "resnest50d_4s2x40d", "resnest50d_1s4x24d", "resnest101e",
    "resnest200e", "resnest269e",
    # nfnet.py: SCALEDSTDCONV, SCALE's alpha and beta, ECA or SE (nets/lib/timm_nfnet.net)
    "eca_nfnet_l0", "eca_nfnet_l1", "eca_nfnet_l2", "eca_nfnet_l3", "nfnet_l0", "nfnet_f0",
    # vovnet.py with ECA (CHANCONV)
    "eca_vovnet39b",
    # ghostnet.py's V2: DFC attention, UPSAMPLE to a size
    "ghostnetv2_100",
    # mambaout.py: gated CNN blocks (nets/lib/timm_mambaout.net)
    "mambaout_femto", "mambaout_kobe", "mambaout_tiny", "mambaout_small", "mambaout_base",
    "mambaout_small_rw", "mambaout_base_short_rw", "mambaout_base_tall_rw",
    # focalnet.py: focal modulation, the contexts as streams (nets/lib/timm_focalnet.net)
    "focalnet_tiny_srf", "focalnet_tiny_lrf", "focalnet_small_srf", "focalnet_small_lrf", "focalnet_base_srf",
    "focalnet_base_lrf",
    # lowformer.py: the CNN-only variants (nets/lib/timm_lowformer.net)
    "lowformer_e1", "lowformer_e2",
    # headers over the blocks above: convnext.py, tresnet.py, metaformer.py, resnet.py
    "convnextv2_base", "convnextv2_large", "convnextv2_huge", "tresnet_xl", "poolformer_s36", "poolformer_m36", "poolformer_m48",
    "convformer_m36", "convformer_b36", "resnetblur101d",
    # regnet.py where timm's widths are torchvision's rule (nets/lib/timm_regnet.net)
    "regnetx_002", "regnetx_006", "regnetx_008", "regnetx_016", "regnetx_032", "regnetx_064", "regnetx_080",
    "regnetx_120", "regnetx_160", "regnetx_320", "regnety_002", "regnety_006", "regnety_008_tv", "regnety_016",
    "regnety_032", "regnety_064", "regnety_080_tv", "regnety_120", "regnety_160", "regnety_320",
    # byobnet.py: the other RepVGG and MobileOne variants (nets/lib/timm_byobnet.net)
    "repvgg_a1", "repvgg_a2", "repvgg_b0", "repvgg_b1", "repvgg_b2", "repvgg_b3", "mobileone_s2", "mobileone_s3",
]}
# The zoo's torchvision nets whose timm twin has the same parameters and MACs (tests/reference/
# timm_census.json): each is checked against timm's model as the families are (issue 24: a family
# whose torchvision member is written counts as written).
ZOO_TWINS = {
    "resnet18": "resnet18", "resnet50": "resnet50", "resnext50_32x4d": "resnext50_32x4d",
    "densenet121": "densenet121", "inception_v3": "inception_v3", "convnext_tiny": "convnext_tiny",
    "efficientnet_b0": "efficientnet_b0", "mobilenet_v2": "mobilenetv2_100", "mnasnet1_0": "mnasnet_100",
}
# Not twins though their totals agree: timm's mobilenetv3_large_100 and vgg16 have a conv head where
# torchvision's have Linear layers (the same parameters, other layers); timm's RegNetY runs each
# block's shortcut after its convs (the same layers, in another order: nets/regnety_004.net).
FAMILY_NETS.update(ZOO_TWINS)
# Families whose timm model shares a name with a torchvision net of the zoo it is not: ours -> timm's
FAMILY_NETS.update({f"timm_{n}": n for n in ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]})
TIMM_NETS = {**CASE_STUDIES, **FAMILY_NETS}
# Published totals (timm's model cards / the papers); a mismatch means the data (or this script) is wrong.
EXPECTED_PARAMS = {"dpn92": 37668392, "dpn98": 61570728, "se_resnet50": 28088024}


def torchvision_reference():
    spec = importlib.util.spec_from_file_location("make_reference", os.path.join(HERE, "make_reference.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def describe(ref, ours, timm_name):
    model = timm.create_model(timm_name, pretrained=False).eval()
    h, w, c = [model.default_cfg["input_size"][i] for i in (1, 2, 0)]
    entry, agreed = ref.describe(ours, model, [h, w, c])
    if not agreed:
        agreed = same_padding_gap(model, entry) or conv1d_gap(model, entry, torch.zeros(1, c, h, w))
    if ours in FAMILY_NETS:
        entry["output"], entry["functional"] = trace_functional(ref, model, torch.zeros(1, c, h, w))
    if not agreed:
        agreed = blur_pool_gap(entry)
    params = sum(p.numel() for p in model.parameters())
    entry["buffers"] = sum(b.numel() for b in model.buffers())
    entry["timm_name"] = timm_name
    return entry, agreed and params == EXPECTED_PARAMS.get(ours, params)


def same_padding_gap(model, entry):
    """fvcore counts no MACs for a conv with padding="same" (traced as aten::_convolution_mode, an op it
    does not know: ConvMixer's depthwise convs). Where that is the whole difference from the hand sum
    over the layers, the hand sum is the count: recorded, with fvcore's beside it. True if so."""
    hand = sum(l["macs"] for l in entry["layers"])
    same = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.padding == "same"}
    gap = sum(l["macs"] for l in entry["layers"] if l["module"] in same)
    if not same or entry["conv_fc_macs"] + gap != hand:
        return False
    entry["fvcore_conv_fc_macs"], entry["conv_fc_macs"] = entry["conv_fc_macs"], hand
    return True


def blur_pool_gap(entry):
    """timm's BlurPool2d convolves by F.conv2d (a fixed depthwise binomial filter), which fvcore counts
    and the module rows do not: where the blur pools' MACs (recorded among the functional rows) are the
    whole difference from the hand sum, fvcore's total is the count. True if so."""
    blur = sum(f.get("macs", 0) for f in entry.get("functional", ()) if f["type"] == "BlurPool2d")
    return bool(blur) and sum(l["macs"] for l in entry["layers"]) + blur == entry["conv_fc_macs"]


def conv1d_gap(model, entry, x):
    """ECA's Conv1d across the channels (CHANCONV) is no recorded row, but fvcore counts it: where its
    MACs (out.numel() * kernel * in/groups, fvcore's rule) are the whole difference from the hand sum,
    fvcore's total stands. Recorded as `conv1d_macs`. True if so."""
    macs, handles = [0], []

    def count(mod, _inp, out):
        macs[0] += out.numel() * mod.kernel_size[0] * mod.in_channels // mod.groups

    for module in model.modules():
        if isinstance(module, torch.nn.Conv1d):
            handles.append(module.register_forward_hook(count))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    if not macs[0] or sum(l["macs"] for l in entry["layers"]) + macs[0] != entry["conv_fc_macs"]:
        return False
    entry["conv1d_macs"] = macs[0]
    return True


def trace_functional(ref, model, x):
    """(output shape, the global means and pools taken by functions): one forward with Tensor.mean,
    torch.mean, F.adaptive_avg_pool2d, F.avg_pool2d and F.max_pool2d wrapped, counting the recorded
    modules' calls to place each; a pool module's own call of its function is its row already."""
    import torch.nn.functional as F
    seen, rows, in_pool_module, handles = [0], [], [False], []

    def count(*_):
        seen[0] += 1

    def pool_module(flag):
        return lambda *_: in_pool_module.__setitem__(0, flag)

    def blur(module, _inp, out):  # a BlurPool2d: its F.conv2d, a depthwise k x k conv, with its MACs
        rows.append({"after": seen[0], "type": "BlurPool2d", "out": ref.hwc(list(out.shape)),
                     "macs": out.numel() * module.filt_size ** 2})

    for module in model.modules():
        if isinstance(module, ref.RECORDED_TYPES):
            handles.append(module.register_forward_hook(count))
        if type(module).__name__ == "BlurPool2d":
            handles.append(module.register_forward_hook(blur))
        if isinstance(module, (torch.nn.AdaptiveAvgPool2d, torch.nn.AvgPool2d, torch.nn.MaxPool2d)):
            handles.append(module.register_forward_pre_hook(pool_module(True)))
            handles.append(module.register_forward_hook(pool_module(False)))

    def note(kind):
        def record(out):
            if not in_pool_module[0]:
                rows.append({"after": seen[0], "type": kind, "out": ref.hwc(list(out.shape))})
            return out
        return record

    def spatial(t, a, k):
        dim = k.get("dim", a[0] if a else None)
        dims = [dim] if isinstance(dim, int) else dim
        # (1, 2): a channels-last net's mean over H and W (MambaOut's head, timm's SqueezeExciteCl)
        return t.dim() == 4 and dims is not None and sorted(d % 4 for d in dims) in ([2, 3], [1, 2])

    originals = (torch.Tensor.mean, torch.mean, F.adaptive_avg_pool2d, F.avg_pool2d, F.max_pool2d)
    tensor_mean, torch_mean, adaptive, avg_pool, max_pool = originals
    mean = note("mean")
    torch.Tensor.mean = lambda t, *a, **k: mean(tensor_mean(t, *a, **k)) if spatial(t, a, k) else tensor_mean(t, *a, **k)
    torch.mean = lambda t, *a, **k: mean(torch_mean(t, *a, **k)) if spatial(t, a, k) else torch_mean(t, *a, **k)
    F.adaptive_avg_pool2d = lambda t, size, *a, **k: (
        mean(adaptive(t, size)) if size in (1, (1, 1)) else note("AdaptiveAvgPool2d")(adaptive(t, size)))
    F.avg_pool2d = lambda *a, **k: note("AvgPool2d")(avg_pool(*a, **k))
    F.max_pool2d = lambda *a, **k: note("MaxPool2d")(max_pool(*a, **k))
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        (torch.Tensor.mean, torch.mean, F.adaptive_avg_pool2d, F.avg_pool2d, F.max_pool2d) = originals
        for h in handles:
            h.remove()
    return list(out.shape[1:]), rows


def main(names=()):
    ref = torchvision_reference()
    torch.manual_seed(0)
    unknown = [n for n in names if n not in TIMM_NETS]
    if unknown:
        print(f"not a reference net: {', '.join(unknown)} (add it to FAMILY_NETS)", file=sys.stderr)
        return 2
    nets, ok = {}, True
    if names and os.path.exists(OUT_PATH):
        with open(OUT_PATH) as f:
            nets = {n: r for n, r in json.load(f)["nets"].items() if n in TIMM_NETS}
    for ours, timm_name in TIMM_NETS.items():
        if names and ours not in names:
            continue
        nets[ours], agreed = describe(ref, ours, timm_name)
        if not agreed:
            print(f"!!! {ours} ({timm_name}): fvcore != hand sum, or params != {EXPECTED_PARAMS.get(ours)}",
                  file=sys.stderr)
        ok &= agreed
    ref.write_atomic(OUT_PATH, {
        "generated_by": "tools/make_reference_timm.py",
        "torch": torch.__version__,
        "timm": timm.__version__,
        "fvcore": version("fvcore"),
        "nets": nets,
    })
    print(f"wrote {os.path.normpath(OUT_PATH)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
