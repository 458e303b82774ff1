"""`cnndsl inspect`: looking inside LeNet-5 trained on the bundled digits, by the spec's layer names.

One LeNet-5 is trained per test session (8 epochs on digits, one thread: a few seconds) and every
command runs on it. What is checked is what the lecture's deck claims of each picture: attributions
sit on the strokes, occluding the strokes costs more than occluding the background, a small
gradient-sign perturbation flips the answer, t-SNE of the last hidden layer separates the classes,
a top patch is the unit's exact receptive field (re-running the net on the crop alone gives the
recorded activation), maximisation raises a class's score tenfold, and a deep tanh net's activations
vanish with a too small initialisation and hold with He's. Then each picture's size and content,
and bad input. CNNDSL_SLOW=1 adds the commands on ResNet-18 at 224x224.
"""
import ast
import json
import os

import numpy as np
import pytest
import torch

import cnndsl
from cnndsl.errors import CnnError
from cnndsl.inspection import inspect
from cnndsl.inspection import attribution, fool, patches as P, receptive as R, synthesis
from cnndsl.inspection.layers import filters
from cnndsl.inspection.subject import Subject

ROOT = os.path.join(os.path.dirname(__file__), "..")
LENET = os.path.join(ROOT, "nets", "lenet5.net")
SLOW = os.environ.get("CNNDSL_SLOW") == "1"


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    from cnndsl.train import train
    out = tmp_path_factory.mktemp("lenet5")
    net = cnndsl.load(LENET)
    r = train(net, "digits", epochs=8, seed=0, out=str(out), threads=1)
    assert r["final"]["val_acc"] > 0.95
    return net, str(out / "weights.safetensors")


@pytest.fixture(scope="module")
def subject(trained):
    torch.set_num_threads(1)
    return Subject(*trained)


@pytest.fixture(scope="module")
def digits(subject):
    """Correctly classified validation digits (normalised) and their labels."""
    x, y, _ = subject.data("digits", split="val")
    pred = subject.scores(torch.as_tensor(x)).argmax(1).numpy()
    keep = np.flatnonzero(pred == y)
    return x[keep], y[keep]


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")

    def write(name, array):
        from PIL import Image
        path = str(folder / name)
        Image.fromarray(array).save(path)
        return path
    return write


def _strokes(s, x):
    """A digit's ink: raw values over a quarter of the range (0..16)."""
    return s.raw(torch.as_tensor(x[None]))[0, 0].numpy() > 4.0


def _mass_ratio(heat, mask):
    """The map's positive mass inside the mask over the mask's share of the area."""
    h = np.clip(heat, 0, None)
    return (h[mask].sum() / h.sum()) / mask.mean()


# ---- the deck's claims ---------------------------------------------------------------------------------
def test_attributions_sit_on_the_strokes(subject, digits):
    x, _ = digits
    for i in range(4):
        xi, mask = torch.as_tensor(x[i:i + 1]), _strokes(subject, x[i])
        integrated = attribution.saliency(subject, xi, method="integrated")
        occ = attribution.occlusion(subject, xi)
        assert _mass_ratio(integrated["map"], mask) >= 2, i
        assert _mass_ratio(occ["map"], mask) >= 2, i
        # occluding the strokes lowers the class's probability more than occluding the background
        assert occ["map"][mask].mean() > 5 * occ["map"][~mask].mean() and occ["map"][mask].mean() > 0.001
        assert integrated["completeness_error"] < 1e-3  # captum's check: the attributions sum to the change
        # the plain gradient is more diffuse (it also marks where ink would change the answer), but still
        # denser on the strokes than elsewhere
        assert _mass_ratio(attribution.saliency(subject, xi)["map"], mask) > 1


def test_fool_flips_with_a_small_perturbation(subject, digits):
    """Each correctly classified digit towards its runner-up class, at the default step (1/1000 of the
    normalised range): those that flip within 100 steps do so with an L-infinity under 0.1 of the data's
    value range (inputs scaled to 0..1; 0.29 of the normalised units, whose std is 4.65 of 16)."""
    x, y = digits
    flipped = []
    for i in range(12):
        xi = torch.as_tensor(x[i:i + 1])
        target = int(subject.scores(xi)[0].argsort(descending=True)[1])
        r = fool.fool(subject, xi, target, max_steps=100)
        assert r["steps"] <= 100 and r["linf"] <= r["steps"] * r["step"] * (1 + 1e-4)
        if r["fooled"]:
            assert r["predicted_after"] == subject.class_name(target)
            assert r["linf_range"] < 0.1 and r["steps"] < 100
            flipped.append(r["linf"])
    assert len(flipped) >= 6
    assert min(flipped) < 0.1  # in normalised units too, for the digits the net is least sure of
    # the perturbation is bounded by the training data's range
    lo, hi = subject.value_range
    assert lo - 1e-4 <= r["perturbed"].min() and r["perturbed"].max() <= hi + 1e-4


def test_tsne_of_the_last_hidden_layer_separates_the_digits(results):
    r = results["embed"]
    assert r["layer"] == "tanh4" and r["plane"].shape == (600, 2)
    assert r["knn_accuracy"] > 0.9


def test_neighbours_in_feature_space(results):
    r = results["neighbours"]
    assert r["feature_neighbours"].shape == (r["queries"], 6)
    assert r["feature_agreement"] > 0.9 and r["feature_agreement"] >= r["pixel_agreement"] - 0.02


def test_top_patch_is_the_receptive_field_and_gives_the_activation(subject, results):
    r = results["patches"]
    row = next(l for l in subject.net.report()["layers"] if l["name"] == "c3")
    assert r["patches"].shape[-2:] == (row["rf"], row["rf"]) == (14, 14)
    x, _, _ = subject.data("digits")
    for j, c in enumerate(r["channels"][:3]):
        n, uy, ux = r["positions"][j, 0]
        crop, inside = R.crop(x[n], R.fields(subject.net)["c3"], uy, ux)
        assert inside.all()  # LeNet-5 has no padding: every field lies inside the image
        # the net run on the crop alone: c3 of a 14x14 input is one unit, the recorded activation
        alone = subject.capture(torch.as_tensor(crop[None]), ["c3"])["c3"]
        assert alone.shape[-2:] == (1, 1)
        assert float(alone[0, c, 0, 0]) == pytest.approx(float(r["activations"][j, 0]), abs=1e-4)
        # and the picture's patch is that crop, in the data's units
        assert np.allclose(r["patches"][j, 0], subject.raw(torch.as_tensor(crop[None]))[0].numpy(), atol=1e-4)


def test_receptive_field_with_padding_is_what_autograd_says():
    """A unit's field (start from the padding, size and jump from the report) against the input cells its
    gradient reaches, for units at the border (partly padding) and inside; linear layers only, so no cell
    of the field has a zero gradient by chance."""
    net = cnndsl.loads("input 23x23x1\nCONV(2, 3, p=1) - AVGPOOL(2) - CONV(2, 3, d=2, p=2) - CONV(2, 3, s=2, p=1)")
    model = net.to_torch(seed=0).double()
    last = net.graph.nodes[-1].name
    field = R.fields(net)[last]
    h, w, _ = net.graph.shape_of(last)
    for uy, ux in [(0, 0), (h // 2, w // 2), (h - 1, w - 1), (0, w - 1)]:
        x = torch.randn(1, 1, 23, 23, dtype=torch.float64, requires_grad=True)
        model(x)[0, 0, uy, ux].backward()
        support = (x.grad[0, 0] != 0).numpy()
        _, inside = R.crop(np.zeros((1, 23, 23), np.float32), field, uy, ux)
        (t, b), (l, r) = field.window(uy, ux)
        expected = np.zeros((23, 23), bool)
        expected[max(t, 0):b, max(l, 0):r] = True
        assert (support == expected).all(), (uy, ux)
        assert inside.sum() == expected.sum()


def test_maximisation_raises_the_class_score_tenfold(subject, results):
    r = results["maximize"]
    assert r["probability_after"] >= 10 * r["probability_before"]
    assert r["score_after"] > r["score_before"] + 5 and r["predicted"] == r["class_name"]
    lo, hi = subject.value_range
    assert lo - 1e-4 <= r["image"].min() and r["image"].max() <= hi + 1e-4


def test_inversion_matches_the_features(results):
    r = results["invert"]
    assert r["feature_error"] < 0.05 and r["reconstruction"].shape == r["image"].shape


def test_stats_of_a_deep_tanh_net_at_initialisation():
    """The batch-norm lecture: 10 layers of 500 tanh units on unit Gaussian inputs."""
    net = cnndsl.loads("input 500\n(FC(500) - TANH)*10")
    small = inspect(net, "stats", init="normal:0.01", samples=300)
    assert len(small["std"]) == 10 and small["std"][0] > 0.1 and small["std"][-1] < 1e-3
    he = inspect(net, "stats", init="he", samples=300)
    assert he["std"][0] / 10 < he["std"][-1] < he["std"][0] * 10
    xavier = inspect(net, "stats", init="xavier", samples=300)
    assert xavier["std"][-1] > xavier["std"][0] / 10
    # ReLU in place of tanh (--act relu): He holds it, and half of the units are off on any input
    relu = inspect(net, "stats", init="he", act="relu", samples=300)
    assert relu["std"][0] / 10 < relu["std"][-1] < relu["std"][0] * 10
    assert all(d is not None and d < 0.2 for d in relu["dead"]) and small["dead"] == [None] * 10


def test_stats_on_the_trained_net(results):
    r = results["stats"]
    assert r["layers"] == ["tanh1", "tanh2", "tanh3", "tanh4"]
    assert all(0 < s < 1 for s in r["std"]) and r["histograms"].shape == (4, 60) and r["edges"].shape == (61,)


def test_filters_and_activations_by_name(subject, results):
    f = results["filters"]
    assert f["weights"].shape == (16, 6, 5, 5)
    assert np.array_equal(f["weights"], subject.module("c3").weight.detach().numpy())
    a = results["activations"]
    assert a["maps"].shape == (6, 28, 28) and a["layer"] == "c1"



def test_weight_standardised_and_channel_convs_are_convolutions():
    """Which layers are convolutions the kind says: a STDCONV is the default of `filters`, is drawn as it
    convolves (standardised per filter), is named in hints and redrawn by `stats --init`; CHANCONV's
    (1, 1, k) taps are redrawn but are no picture."""
    net = cnndsl.loads("input 8x8x3\ns: STDCONV(4, 3) - RELU - q: SCALEDSTDCONV(2, 3) - e: CHANCONV(3) - FC(2)")
    torch.manual_seed(0)
    s = Subject(net, weights=None)
    assert s.convolutions() == ["s", "q"]
    f = filters(s)  # `inspect filters` without --layer
    assert f["layer"] == "s" and f["weights"].shape == (4, 3, 3, 3)
    flat = f["weights"].reshape(4, -1)  # timm's StdConv2d: mean 0, biased variance 1 (+ eps) per filter
    assert np.allclose(flat.mean(1), 0, atol=1e-6) and np.allclose(flat.var(1), 1, atol=1e-4)
    assert not np.allclose(flat, s.module("s").weight.detach().numpy().reshape(4, -1))
    with pytest.raises(CnnError) as e:
        filters(s, "e")
    assert "no filters" in e.value.message and "s, q" in e.value.hint
    notes = inspect(net, "stats", init="normal:0.01", samples=20).notes
    assert any("initialised 4 layers' weights" in n for n in notes)
    with pytest.raises(CnnError) as e:
        filters(Subject(cnndsl.loads("input 8x8x1\nCHANCONV(3) - FC(2)"), weights=None))
    assert "no convolution with spatial filters" in e.value.message

# ---- pictures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def results(trained, png):
    from sklearn.datasets import load_digits
    net, weights = trained
    d = load_digits()
    image = png("three.png", (d.images[3] * 255 / 16).astype(np.uint8))  # an 8x8 digit, as the data holds it
    run = lambda what, **o: inspect(net, what, weights=weights, **o)  # noqa: E731
    blank = Subject(net, weights).blank()
    least = int(Subject(net, weights).scores(blank)[0].argmin())  # the class the blank image is least like
    return {
        "filters": run("filters", layer="c3"), "activations": run("activations", layer="c1", image=image),
        "stats": run("stats", data="digits", samples=300), "patches": run("patches", layer="c3", data="digits", top=4),
        "neighbours": run("neighbours", data="digits"), "embed": run("embed", data="digits", samples=600),
        "saliency": run("saliency", image=image), "gradcam": run("saliency", image=image, method="gradcam"),
        "occlusion": run("occlusion", image=image), "maximize": run("maximize", cls=least, steps=150),
        "invert": run("invert", layer="c5", image=image, steps=150), "fool": run("fool", image=image, target=8),
    }


@pytest.mark.parametrize("what", ["filters", "activations", "stats", "patches", "neighbours", "embed", "saliency",
                                  "gradcam", "occlusion", "maximize", "invert", "fool"])
def test_pictures(results, tmp_path, what):
    from PIL import Image
    path = results[what].save(str(tmp_path / f"{what}.png"))
    img = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert min(img.shape) >= 500 and max(img.shape) <= 2000, img.shape
    assert img.std() > 5
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]  # written atomically
    json.dumps(results[what].json())  # --format json: plain numbers


def test_arrays_to_npz(results, tmp_path):
    r = results["saliency"]
    r.save(str(tmp_path / "s.npz"))
    with np.load(tmp_path / "s.npz") as z:
        assert np.array_equal(z["map"], r["map"])


# ---- inputs, names, bad input ------------------------------------------------------------------------------
def test_images_are_fitted_as_training_fitted_its_data(subject, png):
    from sklearn.datasets import load_digits
    d = load_digits()
    eight = png("d8.png", (d.images[0] * 255 / 16).astype(np.uint8))
    x, notes = subject.image(eight)
    assert x.shape == (1, 1, 32, 32)
    assert any("8x8 -> 24x24" in n and "zero margin" in n for n in notes)
    assert any("0..255 scaled to 0..16" in n for n in notes)
    # the same digit as the data loader prepares it
    data, _, _ = subject.data("digits", split="all")
    assert np.abs(x[0].numpy() - data[0]).max() < 0.02  # Pillow's 8-bit PNG rounds 0..16 to 1/255 steps
    rgb = png("odd.png", np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    x, notes = subject.image(rgb)
    assert x.shape == (1, 1, 32, 32) and any("resized 40x50 -> 32x32" in n for n in notes)


def test_layers_by_spec_name(subject):
    assert subject.layer("s2") == "s2.avgpool1"  # a group: its last layer
    assert any("group" in n for n in subject.notes)
    with pytest.raises(CnnError) as e:
        subject.layer("c1x")
    assert e.value.usage and "c1" in e.value.hint
    with pytest.raises(CnnError) as e:
        inspect(subject.net, "filters", weights=subject.weights, layer="tanh1")
    assert "no filters" in e.value.message


def test_a_checkpoint_of_another_spec_is_refused(trained):
    _, weights = trained
    text = open(LENET).read().replace("c5: CONV(120, 5)", "c5: CONV(100, 5)")
    other = cnndsl.loads(text, path="lenet5_100.net")
    with pytest.raises(CnnError) as e:
        Subject(other, weights)
    assert "another spec" in e.value.message and "c5: CONV" in e.value.message and "tanh3" in e.value.message
    assert "spec it was trained from" in e.value.hint


def test_cli(trained, png, tmp_path, capsys):
    from cnndsl.cli import main
    from sklearn.datasets import load_digits
    _, weights = trained
    image = png("cli.png", (load_digits().images[5] * 255 / 16).astype(np.uint8))
    base = ["inspect", LENET, "--weights", weights]
    assert main(base + ["fool", "--image", image, "--target", "3", "--format", "json", "--steps", "50"]) == 0
    out, err = capsys.readouterr()
    r = json.loads(out)
    assert r["what"] == "fool" and "linf" in r["values"] and "normalised" in r["values"]["linf_units"]
    assert "inspect: image:" in err
    assert main(base + ["activations", "--layer", "c1x", "--image", image]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "c1" in err and "no layer `c1x`" in err
    assert main(["inspect", LENET, "saliency", "--image", image]) == 2  # no --weights
    assert "--weights" in capsys.readouterr()[1]
    assert main(base + ["occlusion", "--image", str(tmp_path / "missing.png")]) == 2
    assert "no such file" in capsys.readouterr()[1].lower()
    out_png = str(tmp_path / "f.png")
    assert main(["inspect", LENET, "filters", "--weights", weights, "-o", out_png]) == 0  # options after WHAT
    assert os.path.getsize(out_png) > 10_000


def test_options_are_checked_before_anything_runs(trained, png):
    net, weights = trained
    image = png("blank.png", np.zeros((32, 32), np.uint8))
    cases = [(dict(what="patches", layer="c3"), "--data"), (dict(what="maximize"), "--class"),
             (dict(what="stats", init="he", weights=weights), "no --weights"),
             (dict(what="stats", init="uniform"), "normal:STD"),
             (dict(what="maximize", cls=10, weights=weights), "0..9"),
             (dict(what="patches", layer="f6", data="digits", weights=weights), "no spatial extent"),
             (dict(what="saliency", image=image, method="gradcam", layer="f6", weights=weights), "volume output"),
             (dict(what="activations", image="/nonexistent.png", layer="c1x", weights=weights), "did you mean c1"),
             (dict(what="invert", layer="c5", image="/nonexistent.png", weights=weights), "no such file")]
    for options, text in cases:
        with pytest.raises(CnnError) as e:
            inspect(net, **options)
        assert e.value.usage and text.lower() in (e.value.message + (e.value.hint or "")).lower(), (options, e.value.message)


def test_progress_bar_appears_after_a_second():
    from cnndsl.cli.inspect import Bar
    bar = Bar("inspect occlusion")
    bar.update(1, 10)
    assert bar.bar is None  # quick work shows no bar
    bar.start -= 2
    bar.update(2, 10)
    assert bar.bar is not None and bar.bar.total == 10  # (tqdm draws it only on a terminal)
    bar.close()


def test_captum_is_imported_only_by_inspection():
    for folder, _, files in os.walk(os.path.join(ROOT, "cnndsl")):
        for f in files:
            if f.endswith(".py") and "inspection" not in folder:
                tree = ast.parse(open(os.path.join(folder, f), encoding="utf-8").read())
                names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names] + \
                    [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
                assert not [n for n in names if n.startswith("captum")], f


# ---- ResNet-18 at 224x224 (CNNDSL_SLOW=1) ---------------------------------------------------------------
@pytest.mark.skipif(not SLOW, reason="CNNDSL_SLOW=1: ResNet-18 at 224x224 by its names (about 15 s)")
def test_resnet18_by_name(tmp_path, png):
    import cnndsl.weights as W
    net = cnndsl.load(os.path.join(ROOT, "nets", "resnet18.net"))
    path = str(tmp_path / "r18.safetensors")
    W.save(net.to_torch(seed=0), path)
    image = png("photo.png", np.random.default_rng(1).integers(0, 255, (160, 200, 3), dtype=np.uint8))
    r = inspect(net, "saliency", weights=path, image=image, method="gradcam")
    assert r["layer"] == "layer4.basic2.relu_2" and r["map"].shape == (224, 224)
    r = inspect(net, "saliency", weights=path, image=image, method="guided")
    assert r["map"].shape == (224, 224) and np.isfinite(r["map"]).all()
    r = inspect(net, "filters", weights=path)
    assert r["weights"].shape == (64, 3, 7, 7)
    r = inspect(net, "occlusion", weights=path, image=image, window=56, stride=28)
    assert r["map"].shape == (224, 224)
