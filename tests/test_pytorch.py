"""The PyTorch backend against PyTorch itself: parameter counts, per-layer shapes, names, modes.

The analyzer's figures are checked here against what the built modules really hold and
produce (forward hooks on every layer), for every zoo net (on the meta device: no memory,
no arithmetic) and for 200 random valid specs (small, real tensors).
"""
import math
import os

import pytest

torch = pytest.importorskip("torch")

import cnndsl  # noqa: E402
from cnndsl.backends import pytorch  # noqa: E402
from cnndsl.kinds import KINDS  # noqa: E402
from specgen import random_specs, zoo_params  # noqa: E402
from specgen import RESNETISH  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")


def nchw_to_hwc(shape):
    shape = tuple(shape)[1:]
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape


def recorded_shapes(net, module, x):
    """Run `module` on x with a hook on every layer; {layer name: output shape HWC}."""
    seen = {}
    handles = [module.get_submodule(n.name).register_forward_hook(
        lambda m, i, o, name=n.name: seen.__setitem__(name, nchw_to_hwc(o.shape))) for n in net.graph.nodes]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def check_against_analyzer(net, device=None, batch=2):
    m = net.to_torch(device=device).eval()
    totals = net.report()["totals"]
    assert sum(p.numel() for p in m.parameters()) == totals["params"]
    assert sum(b.numel() for k, b in m.named_buffers() if not k.endswith("num_batches_tracked")) == totals["buffers"]
    shape = net.graph.input_shape
    x = torch.zeros((batch, shape[2], shape[0], shape[1]) if len(shape) == 3 else (batch, *shape), device=device)
    seen = recorded_shapes(net, m, x)
    want = {n.name: tuple(n.out_shape) for n in net.graph.nodes}
    assert seen == want
    return m


@pytest.mark.parametrize("path", zoo_params())
def test_zoo_net_matches_analyzer_on_meta(path):
    net = cnndsl.load(path)
    m = check_against_analyzer(net, device="meta", batch=1)
    keys = set(m.state_dict())
    for layer in net.report()["layers"]:  # naming contract: module path == layer name
        if layer["params"]:
            assert f"{layer['name']}.weight" in keys


def test_random_specs_match_analyzer():
    """Shapes from PyTorch's own shape functions (meta device) for 80 random specs (200 with
    CNNDSL_SLOW=1: the first 80 of the same draw), real arithmetic for the first 25."""
    torch.manual_seed(0)
    for i, (text, net) in enumerate(random_specs(200 if os.environ.get("CNNDSL_SLOW") else 80)):
        try:
            check_against_analyzer(net, device="meta" if i >= 25 else None, batch=2)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- spec ---\n{text}") from None


def test_state_dict_keys_follow_the_naming_contract():
    net = cnndsl.loads(RESNETISH)
    keys = list(net.to_torch().state_dict())
    assert keys[:6] == ["stem.conv1.weight", "stem.bn1.weight", "stem.bn1.bias", "stem.bn1.running_mean",
                        "stem.bn1.running_var", "stem.bn1.num_batches_tracked"]
    assert "layer1.basic2.conv2.weight" in keys and "layer1.basic2.conv2.bias" not in keys
    assert keys[-2:] == ["fc1.weight", "fc1.bias"]


def test_layer_names_that_are_nn_module_methods():
    net = cnndsl.loads("input 8x8x3\ntrain: [CONV(4, 3) - RELU] - eval: CONV(2, 1)")
    m = net.to_torch()
    assert {"train.conv1.weight", "eval.weight"} <= set(m.state_dict())
    assert m(torch.randn(1, 3, 8, 8)).shape == (1, 2, 6, 6)
    m.eval()  # the method still works
    assert not m.training


def test_seed_is_reproducible_and_leaves_global_rng_alone():
    net = cnndsl.loads(RESNETISH)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = net.to_torch(seed=7), net.to_torch(seed=7), net.to_torch(seed=8)
    assert torch.equal(torch.rand(3), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["stem.conv1.weight"], sc["stem.conv1.weight"])


def test_he_init_for_conv_followed_by_relu_and_bn_defaults():
    net = cnndsl.loads("input 64x64x16\nCONV(256, 3, p=1) - BN - RELU - CONV(256, 3, p=1) - SIGMOID")
    m = net.to_torch(seed=0)
    he, plain = m.conv1.weight, m.conv2.weight
    fan_out = 256 * 9
    assert abs(he.std().item() - math.sqrt(2 / fan_out)) < 0.05 * math.sqrt(2 / fan_out)
    assert torch.all(m.conv1.bias == 0)
    # PyTorch's default, kaiming_uniform_(a=sqrt(5)): U(-b, b) with b = 1/sqrt(fan_in)
    assert plain.abs().max().item() <= 1 / math.sqrt(256 * 9) + 1e-6
    assert torch.all(m.bn1.weight == 1) and torch.all(m.bn1.bias == 0)


def test_inplace_relu_only_where_safe():
    net = cnndsl.loads("input 8x8x3\nCONV(4, 1) - RELU - SIGMOID - RELU - { ID | CONV(4, 1) } - RELU")
    m = net.to_torch()
    assert m.relu1.inplace and not m.relu2.inplace and m.relu3.inplace
    net = cnndsl.loads("input 8x8x3\nCONV(4, 1) - { ID + RELU }")  # conv1 is read by the ADD too
    assert not net.to_torch().relu1.inplace
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    net.to_torch()(x).sum().backward()  # autograd would complain about a bad in-place op


def test_train_and_eval_modes_bn_and_dropout():
    net = cnndsl.loads("input 8x8x3\nCONV(4, 3, p=1) - BN - RELU - DROPOUT(0.5) - GAP - FC(3)")
    m = net.to_torch(seed=0)
    x = torch.randn(4, 3, 8, 8)
    m.train()
    m(x)
    assert m.bn1.num_batches_tracked.item() == 1
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m(x))


def test_logits_drops_the_final_softmax():
    net = cnndsl.loads(RESNETISH)
    probs, logits = net.to_torch(seed=1).eval(), net.to_torch(seed=1, logits=True).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(probs(x), torch.softmax(logits(x), 1), atol=1e-6)
    assert "softmax1" not in dict(logits.named_modules())


def test_unknown_option_is_a_clear_error():
    with pytest.raises(cnndsl.CnnError, match="unknown options"):
        cnndsl.loads(RESNETISH).to_torch(logit=True)


def test_channels_last_and_bf16_autocast():
    m = cnndsl.loads(RESNETISH).to_torch(seed=0).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = m(x)
        cl = m.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = m(x)
    assert torch.allclose(cl, ref, atol=1e-5)
    assert low.dtype in (torch.bfloat16, torch.float32) and torch.allclose(low.float(), ref, atol=2e-2)


def test_torch_compile_has_no_graph_breaks():
    m = cnndsl.loads(RESNETISH).to_torch(seed=0)
    explanation = torch._dynamo.explain(m)(torch.randn(2, 3, 16, 16))
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


def test_torch_export_runs_the_same():
    m = cnndsl.loads(RESNETISH).to_torch(seed=0).eval()
    x = torch.randn(2, 3, 16, 16)
    program = torch.export.export(m, (x,))
    with torch.no_grad():
        assert torch.allclose(program.module()(x), m(x), atol=1e-6)


def test_backward_runs_and_trains():
    net = cnndsl.loads(RESNETISH)
    m = net.to_torch(seed=0, logits=True)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def autograd_saved_bytes(net, batch=1):
    """Bytes autograd keeps for backward (unique storages, parameters excluded), per image."""
    m = net.to_torch(seed=0).train()
    params = {p.untyped_storage().data_ptr() for p in m.parameters()}
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            storages[s.data_ptr()] = s.nbytes()
        return t

    H, W, C = net.graph.input_shape
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m(torch.randn(batch, C, H, W))
    return sum(storages.values()) / batch


@pytest.mark.parametrize("name", ["lenet5", "alexnet_227", "resnet18", "squeezenet1_1"])
def test_analyzer_saved_bytes_match_autograd(name):
    path = os.path.join(ROOT, "nets", f"{name}.net")
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    net = cnndsl.load(path)
    want = net.report()["totals"]["saved_bytes_per_image"]
    got = autograd_saved_bytes(net)
    assert abs(want - got) <= 0.15 * got, (want, got)


def test_saved_bytes_of_the_unusual_kinds():
    net = cnndsl.loads("input 16x16x8\nCONV(8, 3, p=1) - BN - RELU6 - LRN(size=3) - SIGMOID - CONV(8, 1) - TANH"
                       " - SOFTPLUS - MAXPOOL(2) - DROPOUT(0.3) - LEAKYRELU(0.1) - AVGPOOL(2) - FC(10) - SOFTMAX")
    want = net.report()["totals"]["saved_bytes_per_image"]
    got = autograd_saved_bytes(net)
    assert abs(want - got) <= 0.15 * got, (want, got)


@pytest.mark.parametrize("body", [
    "CONV(8, 3, p=1) - SIGMOID - RELU - CONV(8, 3, p=1)",   # a ReLU that cannot run in place
    "CONV(8, 3, p=1) - TANH - RELU - FC(4)",
    "AVGPOOL(2) - FC(10)",                                    # the input needs no gradient: pool keeps nothing
    "LRN - CONV(4, 1)",
    "{ CONV(8, 1) | CONV(8, 3, p=1) - RELU } - RELU - CONV(4, 1)",
])
def test_saved_bytes_exact_on_small_specs(body):
    # (DROPOUT is left out: its mask is 1 byte a value on CUDA, as counted, but PyTorch's CPU path keeps
    # a float mask; the zoo tests above cover it within tolerance)
    net = cnndsl.loads("input 32x32x8\n" + body)
    assert net.report()["totals"]["saved_bytes_per_image"] == autograd_saved_bytes(net)



@pytest.mark.parametrize("body, channels, batches", [
    ("CONV(8, 3, p=1) - BN - CONV(4, 1)", 8, (1, 4)),
    ("CONV(8, 3, p=1) - BN - RELU - CONV(4, 1)", 8, (1, 3)),         # ReLU in place on BN's output
    ("BN - CONV(4, 1)", 8, (1, 2)),                                   # on the network input
    ("FC(16) - BN - FC(3)", 16, (2, 4)),                              # BatchNorm1d: training needs 2 images
    ("CONV(8, 3, p=1) - GROUPNORM(2) - GROUPNORM(4, affine=false) - CONV(4, 1)", 0, (1, 4)),
    ("CONV(8, 3, p=1) - LAYERNORM - LAYERNORM(affine=false) - CONV(4, 1)", 0, (1, 4)),
    ("FC(16) - LAYERNORM - LAYERNORM(affine=false) - FC(3)", 0, (1, 4)),
])
def test_saved_bytes_of_the_norms_exact_at_every_batch(body, channels, batches):
    """Training-mode BN keeps its input and, per batch, the running mean and variance and the batch's
    mean and 1/std (4 x C fp32): the analysis counts them per image as at batch 1, so autograd's bytes at
    batch N are the per-image part N times and those once. GroupNorm and LayerNorm keep a mean and 1/std
    per image (per group, per position): per image at every batch, affine or not."""
    net = cnndsl.loads("input 8x8x8\n" + body)
    want = net.report()["totals"]["saved_bytes_per_image"]
    per_batch = 16 * channels
    for n in batches:
        assert autograd_saved_bytes(net, batch=n) * n == (want - per_batch) * n + per_batch, (body, n)

# ---- the structure is the modules: swaps, hooks, copies, tracing ----------------------------------
RESNET18 = os.path.join(ROOT, "nets", "resnet18.net")


@pytest.fixture(scope="module")
def resnet18():
    return cnndsl.load(RESNET18)


def small_x(net, batch=2, size=64):
    H, W, C = net.graph.input_shape
    torch.manual_seed(3)
    return torch.randn(batch, C, min(H, size), min(W, size))


def test_replacing_the_head_changes_the_output(resnet18):
    m = resnet18.to_torch(seed=0).eval()
    x = small_x(resnet18)
    with torch.no_grad():
        features = {}
        m.avgpool.register_forward_hook(lambda mod, i, o: features.update(gap=o))
        assert m(x).shape == (2, 1000)
        m.fc = torch.nn.Linear(512, 5)
        y = m(x)
    assert y.shape == (2, 5)
    assert torch.allclose(y, m.fc(torch.flatten(features["gap"], 1)), atol=1e-6)


def test_replacing_a_layer_inside_a_block(resnet18):
    m = resnet18.to_torch(seed=0).eval()
    x = small_x(resnet18)
    with torch.no_grad():
        before = m(x)
        m.layer1.basic1.bn1 = torch.nn.Identity()
        after = m(x)
        m.layer1.basic1.bn1 = torch.nn.BatchNorm2d(64).eval()  # a fresh BN at inference: identity up to eps
        fresh = m(x)
    assert not torch.allclose(before, after)
    assert torch.allclose(fresh, after, atol=1e-3)
    assert list(m.state_dict()) == list(resnet18.to_torch(device="meta").state_dict())


def test_hooks_fire_on_swapped_in_modules_and_on_the_root(resnet18):
    m = resnet18.to_torch(seed=0).eval()
    new = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False)
    calls = []
    new.register_forward_hook(lambda *a: calls.append("new"))
    new.register_forward_pre_hook(lambda *a: calls.append("pre"))
    m.register_forward_hook(lambda *a: calls.append("root"))
    m.layer1.basic2.conv1 = new
    with torch.no_grad():
        m(small_x(resnet18))
    assert calls == ["pre", "new", "root"]


def test_deepcopy_and_pickle_are_independent_and_equal(resnet18):
    import copy
    import pickle
    m = resnet18.to_torch(seed=0).eval()
    x = small_x(resnet18)
    with torch.no_grad():
        ref = m(x)
        for other in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
            assert torch.equal(other(x), ref)
            other.fc = torch.nn.Linear(512, 3)
            assert other(x).shape == (2, 3) and m(x).shape == (2, 1000)


def test_copies_run_their_own_layers():
    """deepcopy, and shallow copies whose children are replaced (as DataParallel's replicas are)."""
    import copy
    m = cnndsl.loads(RESNETISH).to_torch(seed=0).eval()
    x = torch.randn(2, 3, 16, 16)
    deep = copy.deepcopy(m)
    shallow = copy.copy(m)
    shallow._modules = {k: copy.deepcopy(v) for k, v in m._modules.items()}
    replica = m._replicate_for_data_parallel()
    replica._modules["fc1"] = copy.deepcopy(m.fc1)
    with torch.no_grad():
        ref = m(x)
        for mod in (deep, shallow, replica):
            torch.nn.init.zeros_(mod.get_submodule("fc1").bias)
            torch.nn.init.ones_(mod.get_submodule("fc1").weight)
            assert not torch.allclose(mod(x), ref)
        assert torch.equal(m(x), ref)


def test_print_shows_the_module_tree_and_code_the_forward(resnet18):
    m = resnet18.to_torch(device="meta")
    text = str(m)
    assert text.startswith("CnnNet(\n  spec='resnet18', input=224x224x3 (HxWxC)\n  (conv1): Conv2d(3, 64")
    assert "(layer1): Group(" in text and "(fc): Linear(in_features=512, out_features=1000, bias=True)" in text
    assert "    fc = self._modules['fc'](flatten1); del flatten1\n    return fc\n" in m.code  # logits=False: no softmax here
    assert "= self._modules['layer1']._modules['basic1']._modules['add1'](" in m.code


NAMES_THAT_CLASH = ["train", "eval", "forward", "training", "code", "spec_name", "x", "self", "class", "to"]


def test_layer_names_that_clash_with_attributes_keywords_or_variables():
    body = " - ".join(f"{name}: CONV(4, 1)" for name in NAMES_THAT_CLASH)
    net = cnndsl.loads(f"input 8x8x4\nblock: [CONV(4, 1) - forward: RELU] - {body}")
    m = net.to_torch(seed=0)
    assert {f"{n}.weight" for n in NAMES_THAT_CLASH} <= set(m.state_dict())
    assert [n for n, _ in m.named_children()] == ["block"] + NAMES_THAT_CLASH
    seen = []
    for name in ["block.forward"] + NAMES_THAT_CLASH:
        mod = m._modules["block"]._modules["forward"] if name == "block.forward" else m._modules[name]
        mod.register_forward_hook(lambda *a, name=name: seen.append(name))
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        y = m(x)
        assert seen == ["block.forward"] + NAMES_THAT_CLASH and y.shape == (1, 4, 8, 8)
        m._modules["to"] = torch.nn.Identity()  # a swap at one of those names counts too
        want = m._modules["block"]._modules["forward"](m._modules["block"]._modules["conv1"](x))
        for name in NAMES_THAT_CLASH:
            want = m._modules[name](want)
        assert torch.equal(m(x), want)
        assert torch.equal(torch.compile(m, fullgraph=True, backend="eager")(x), want)
    m.eval()  # the methods still work
    assert not m.training and m.spec_name == net.name and m.code.startswith("def forward(self, x):")


def test_inplace_add_writes_into_the_input_it_may_overwrite():
    net = cnndsl.loads("input 8x8x3\nCONV(4, 1) - { ID + CONV(4, 1) - BN }")  # conv1 is read by conv2 too
    add = net.graph["add1"]
    assert add.inputs == ["conv1", "bn1"]
    m = net.to_torch(seed=0).eval()
    assert m.add1.inplace and "add1 = self._modules['add1'](bn1, conv1)" in m.code
    ptrs = {}
    for name in ("bn1", "add1"):
        m.get_submodule(name).register_forward_hook(lambda mod, i, o, name=name: ptrs.update({name: o.data_ptr()}))
    with torch.no_grad():
        m(torch.randn(1, 3, 8, 8))
    assert ptrs["add1"] == ptrs["bn1"]


@pytest.mark.parametrize("spec", [RESNETISH, "nets/squeezenet1_1.net", "nets/googlenet.net"])
def test_tensors_are_dropped_after_their_last_reader(spec):
    """At each layer's call, every earlier output that no later layer reads is already gone."""
    import weakref
    from cnndsl.analysis.inplace import shared_memory
    net = cnndsl.load(os.path.join(ROOT, spec)) if spec.endswith(".net") else cnndsl.loads(spec)
    g = net.graph
    m = net.to_torch(seed=0).eval()
    last = {}
    for i, n in enumerate(g.nodes):
        for s in n.inputs:
            last[s] = i
    aliased = set(shared_memory(g)[0].values())  # their memory lives on as a later output
    order = {n.name: i for i, n in enumerate(g.nodes)}
    refs, checked = {}, []

    def pre(mod, args, name):
        for done, ref in refs.items():
            if done not in aliased and done != g.output and last.get(done, -1) < order[name]:
                assert ref() is None, f"{done} is still alive when {name} runs"
                checked.append(done)

    def post(mod, args, out, name):
        refs[name] = weakref.ref(out)

    for n in g.nodes:
        mod = m.get_submodule(n.name)
        mod.register_forward_pre_hook(lambda mod, a, name=n.name: pre(mod, a, name))
        mod.register_forward_hook(lambda mod, a, o, name=n.name: post(mod, a, o, name))
    with torch.no_grad():
        m(small_x(net, batch=1, size=96))
    assert len(set(checked)) > len(g.nodes) // 2


def reference_forward(net, m, x):
    """The IR run by hand, one module call a node: the wiring the generated forward must reproduce."""
    from cnndsl.backends.torch_plan import inplace_nodes
    inplace = inplace_nodes(net.graph)
    vals = {"input": x}
    for n in net.graph.nodes:
        mod = m
        for part in n.name.split("."):
            mod = mod._modules[part]
        ins = list(n.inputs)
        if n.name in inplace and n.kind.join:
            ins.insert(0, ins.pop(inplace[n.name]))
        vals[n.name] = mod(*[vals[s] for s in ins])
    return vals[net.graph.output]


def test_generated_forward_agrees_with_the_ir_on_random_specs():
    torch.manual_seed(0)
    for text, net in random_specs(60, seed=11):
        m = net.to_torch(seed=0).eval()
        H, W, C = net.graph.input_shape if len(net.graph.input_shape) == 3 else (None, None, None)
        x = torch.randn(2, C, H, W) if C else torch.randn(2, *net.graph.input_shape)
        with torch.no_grad():
            assert torch.equal(m(x), reference_forward(net, m, x.clone())), text


def test_fx_trace_names_the_layers_and_follows_swaps(resnet18):
    m = resnet18.to_torch(seed=0).eval()
    x = small_x(resnet18)
    traced = torch.fx.symbolic_trace(m)
    targets = [n.target for n in traced.graph.nodes if n.op == "call_module"]
    assert targets[:4] == ["conv1", "bn1", "relu", "maxpool"] and "layer1.basic1.conv1" in targets
    with torch.no_grad():
        assert torch.equal(traced(x), m(x))
        m.fc = torch.nn.Linear(512, 7)
        assert torch.fx.symbolic_trace(m)(x).shape == (2, 7)


def test_torch_compile_fullgraph_and_recompiles_after_a_swap():
    m = cnndsl.loads(RESNETISH).to_torch(seed=0).eval()
    x = torch.randn(2, 3, 16, 16)
    compiled = torch.compile(m, fullgraph=True, backend="eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x), m(x), atol=1e-6)
        m.fc1 = torch.nn.Linear(m.fc1.in_features, 4)
        assert compiled(x).shape == (2, 4)


def test_torch_export_after_a_swap():
    m = cnndsl.loads(RESNETISH).to_torch(seed=0).eval()
    m.fc1 = torch.nn.Linear(m.fc1.in_features, 4)
    x = torch.randn(2, 3, 16, 16)
    program = torch.export.export(m, (x,))
    with torch.no_grad():
        assert torch.allclose(program.module()(x), m(x), atol=1e-6)
    assert any("fc1" in k for k in program.state_dict)


def test_dtype_and_meta_device():
    net = cnndsl.loads(RESNETISH)
    m = net.to_torch(seed=0, dtype=torch.float64).eval()
    assert all(p.dtype == torch.float64 for p in m.parameters())
    assert m(torch.randn(1, 3, 16, 16, dtype=torch.float64)).dtype == torch.float64
    meta = net.to_torch(device="meta")
    assert meta(torch.empty(1, 3, 16, 16, device="meta")).device.type == "meta"
