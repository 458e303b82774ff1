"""`cnndsl serve` without a browser: every endpoint through Starlette's TestClient, the token, the Host
and Origin checks, paths that try to leave DIR, big and hostile inputs, concurrent edits, saves and
changes on disk, the search, the downloads, a training run and its events; and that the editing
path never imports torch. The page itself in Chromium: tests/test_serve_browser.py."""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx2")
from starlette.testclient import TestClient  # noqa: E402

import cnndsl  # noqa: E402
from cnndsl import cli  # noqa: E402
from cnndsl.serve.app import make_app  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETS = os.path.join(ROOT, "nets")
TOKEN = "0123456789abcdef" * 3
BASE = "http://127.0.0.1:8765"
AUTH = {"X-Cnndsl-Token": TOKEN}


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "served"
    (root / "lib").mkdir(parents=True)
    for name in ("lenet5.net", "resnet18.net", "cs231n_pattern.net"):
        shutil.copy(os.path.join(NETS, name), root / name)
    shutil.copy(os.path.join(NETS, "examples", "family.net"), root / "family.net")
    shutil.copy(os.path.join(NETS, "lib", "resnet.net"), root / "lib" / "resnet.net")
    (tmp_path / "secret.net").write_text("input 8x8x1\nFC(3)\n")
    (root / "notes.txt").write_text("not a spec")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "h.net").write_text("input 8x8x1\nFC(3)\n")
    os.symlink(tmp_path / "secret.net", root / "link_out.net")
    os.symlink(tmp_path, root / "dir_out")
    return root


@pytest.fixture
def client(served):
    app = make_app(served, token=TOKEN)
    with TestClient(app, base_url=BASE) as c:
        c.app_ = app
        yield c


def analyze(client, path, text, bindings=None):
    r = client.post("/api/analyze", headers=AUTH, json={"path": path, "text": text, "bindings": bindings or {}})
    assert r.status_code == 200, r.text
    return r.json()


def cli_report(path, *defines):
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["report", str(path), "--format", "json", *sum((["-D", d] for d in defines), [])]) == 0
    return json.loads(buf.getvalue())


# ---- the guard --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["/", "/static/app.js", "/api/files", "/api/file?path=lenet5.net",
                                 "/api/stat?path=lenet5.net", "/api/train", "/api/train/events"])
def test_every_endpoint_wants_the_token(client, url):
    assert client.get(url).status_code == 401
    assert client.get(url + ("&" if "?" in url else "?") + "token=" + "f" * 48).status_code == 401
    assert client.get(url, headers={"X-Cnndsl-Token": TOKEN[:-1]}).status_code == 401
    if not url.endswith("events"):  # the stream would not end: its token check is above
        assert client.get(url + ("&" if "?" in url else "?") + "token=" + TOKEN).status_code == 200
        assert client.get(url, headers={"Authorization": "token " + TOKEN}).status_code == 200


def test_writes_want_the_token(client):
    for method, url in (("PUT", "/api/file"), ("POST", "/api/analyze"), ("POST", "/api/train"),
                        ("POST", "/api/train/stop"), ("POST", "/api/download"), ("POST", "/api/search")):
        r = client.request(method, url, json={"path": "lenet5.net", "text": "x"})
        assert r.status_code == 401, (method, url)


def test_the_page_carries_the_token_and_security_headers(client):
    r = client.get("/?token=" + TOKEN)
    assert r.status_code == 200 and "<html" in r.text.lower()
    assert f"static/app.js?token={TOKEN}" in r.text and "__TOKEN__" not in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in r.headers
    assert client.get("/static/app.js", headers=AUTH).headers["content-type"].startswith("text/javascript")
    assert client.get("/static/../app.py", headers=AUTH).status_code == 404
    assert client.get("/static/index.html", headers=AUTH).status_code == 404


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", "localhost.evil",
                                  "[::2]:8765", ""])
def test_foreign_host_refused_even_with_the_token(client, host):
    r = client.get("/?token=" + TOKEN, headers={"Host": host})
    assert r.status_code == 403 and "DNS rebinding" in r.json()["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "LOCALHOST", "[::1]:8765", "127.0.0.1"])
def test_loopback_names_pass(client, host):
    assert client.get("/?token=" + TOKEN, headers={"Host": host}).status_code == 200


def test_a_named_host_and_a_wildcard(served):
    named = TestClient(make_app(served, TOKEN, host="192.168.7.7"), base_url=BASE)
    assert named.get("/", headers={**AUTH, "Host": "192.168.7.7:8765"}).status_code == 200
    assert named.get("/", headers={**AUTH, "Host": "evil.example"}).status_code == 403
    anywhere = TestClient(make_app(served, TOKEN, host="0.0.0.0"), base_url=BASE)
    assert anywhere.get("/", headers={**AUTH, "Host": "box.lan:8765"}).status_code == 200
    assert anywhere.get("/", headers={"Host": "box.lan:8765"}).status_code == 401   # the token still decides


def test_origin_checked_on_writes(client):
    body = {"path": "lenet5.net", "text": "input 8x8x1\nFC(3)\n"}
    assert client.put("/api/file", headers={**AUTH, "Origin": "http://evil.example"}, json=body).status_code == 403
    assert client.post("/api/analyze", headers={**AUTH, "Origin": "http://127.0.0.1:9999"}, json=body).status_code == 403
    assert client.post("/api/analyze", headers={**AUTH, "Sec-Fetch-Site": "cross-site"}, json=body).status_code == 403
    assert client.put("/api/file", headers={**AUTH, "Origin": BASE}, json=body).status_code == 200
    assert client.put("/api/file", headers=AUTH, json=body).status_code == 200             # curl sends no Origin
    assert client.get("/api/files", headers={**AUTH, "Origin": "http://evil.example"}).status_code == 200  # reads: the token
    assert "access-control-allow-origin" not in client.get("/api/files", headers=AUTH).headers


# ---- files --------------------------------------------------------------------------------------------------
def test_files_lists_specs_under_dir_only(client):
    r = client.get("/api/files", headers=AUTH).json()
    paths = [f["path"] for f in r["files"]]
    assert paths == ["cs231n_pattern.net", "family.net", "lenet5.net", "lib/resnet.net", "resnet18.net"]
    assert r["data"] == []


@pytest.mark.parametrize("path", ["../secret.net", "/etc/passwd", "lib/../../secret.net", "..%2fsecret.net",
                                  "link_out.net", "dir_out/secret.net", "notes.txt", "lib", "", "a\0.net",
                                  "..\\secret.net", "x" * 5000 + ".net"])
def test_nothing_outside_dir_is_read(client, path):
    r = client.get("/api/file", headers=AUTH, params={"path": path})
    assert r.status_code in (400, 403, 404), (path, r.status_code)
    assert "FC(3)" not in r.text
    r = client.get("/api/stat", headers=AUTH, params={"path": path})
    assert r.status_code in (400, 403, 404) or r.json() == {"path": path, "exists": False}  # `..%2f...`: a name in DIR


@pytest.mark.parametrize("url", ["/files/../secret.net", "/files/..%2fsecret.net", "/../secret.net",
                                 "/static/..%2f..%2fsecret.net", "/%2e%2e/secret.net"])
def test_urls_that_walk_out(client, url):
    r = client.get(url, headers=AUTH)
    assert r.status_code == 404 and "FC(3)" not in r.text


@pytest.mark.parametrize("path", ["../evil.net", "link_out.net", "dir_out/new.net", "notes.txt", "x.py",
                                  "/tmp/evil.net"])
def test_nothing_outside_dir_is_written(client, served, path):
    before = open(served.parent / "secret.net").read()
    r = client.put("/api/file", headers=AUTH, json={"path": path, "text": "input 8x8x1\nFC(9)\n"})
    assert r.status_code in (400, 403), (path, r.status_code)
    assert open(served.parent / "secret.net").read() == before
    assert not (served.parent / "evil.net").exists() and not (served.parent / "new.net").exists()
    assert not (served / "x.py").exists()


def test_read_save_and_changes_on_disk(client, served):
    f = client.get("/api/file", headers=AUTH, params={"path": "lenet5.net"}).json()
    assert f["text"] == open(served / "lenet5.net").read()
    text = f["text"].replace("FC(10)", "FC(12)")
    saved = client.put("/api/file", headers=AUTH, json={"path": "lenet5.net", "text": text,
                                                        "base_sha256": f["sha256"]}).json()
    assert open(served / "lenet5.net").read() == text and saved["sha256"] != f["sha256"]
    assert not [n for n in os.listdir(served) if n.endswith(".tmp")]            # atomic: no temporary left
    assert client.get("/api/stat", headers=AUTH, params={"path": "lenet5.net"}).json()["sha256"] == saved["sha256"]
    (served / "lenet5.net").write_text(text + "# edited elsewhere\n")             # another editor writes
    stat = client.get("/api/stat", headers=AUTH, params={"path": "lenet5.net"}).json()
    assert stat["sha256"] != saved["sha256"]                                     # what the page's poll notices
    r = client.put("/api/file", headers=AUTH, json={"path": "lenet5.net", "text": "mine", "base_sha256": saved["sha256"]})
    assert r.status_code == 409 and "changed on disk" in r.json()["error"]
    assert open(served / "lenet5.net").read().endswith("# edited elsewhere\n")   # nothing lost
    r = client.put("/api/file", headers=AUTH, json={"path": "lenet5.net", "text": "mine\n", "base_sha256": None})
    assert r.status_code == 200 and open(served / "lenet5.net").read() == "mine\n"   # "overwrite it"
    r = client.put("/api/file", headers=AUTH, json={"path": "sub/new.net", "text": "input 8x8x1\nFC(3)\n", "new": True})
    assert r.status_code == 200 and (served / "sub" / "new.net").exists()
    assert client.put("/api/file", headers=AUTH, json={"path": "sub/new.net", "text": "x", "new": True}).status_code == 409
    os.unlink(served / "sub" / "new.net")
    assert client.get("/api/stat", headers=AUTH, params={"path": "sub/new.net"}).json() == {"path": "sub/new.net", "exists": False}


# ---- the analysis -----------------------------------------------------------------------------------------
def test_report_equals_the_cli(client, served):
    text = open(served / "resnet18.net").read()
    r = analyze(client, "resnet18.net", text)
    want = cli_report(served / "resnet18.net")
    assert r["ok"] and r["diagnostics"] == []
    assert r["report"]["totals"] == want["totals"] and r["report"]["layers"] == want["layers"]
    assert r["report"]["source"] == "resnet18.net" and r["report"]["output_shape"] == [1000]


def test_bindings_equal_report_D(client, served):
    text = open(served / "family.net").read()
    r = analyze(client, "family.net", text)
    assert r["controls"] == [{"name": "N", "kind": "range", "min": 1, "max": 6, "default": "3"}]
    for n in ("1", "5"):
        got = analyze(client, "family.net", text, {"N": n})["report"]["totals"]
        assert got == cli_report(served / "family.net", f"N={n}")["totals"]
    r = analyze(client, "cs231n_pattern.net", open(served / "cs231n_pattern.net").read(), {"pool": "off", "gone": "3"})
    assert r["ok"] and r["ignored"] == ["gone"]                       # a name no longer in the text is left out
    assert r["report"]["totals"] == cli_report(served / "cs231n_pattern.net", "pool=off")["totals"]
    assert {"name": "pool", "kind": "switch", "values": ["on", "off"], "default": "on", "optional": True} in r["controls"]


def test_controls_of_lists_switches_and_large_families(client):
    text = ("input 32x32x3\nlet C = 32 in 16, 32, 64\nlet pool = on in each\nlet N = 2 in 1..60\nlet M = 2 in 1..60\n"
            "[(CONV(C, 3, p=1) - RELU)*N - POOL?]*M - FC(10)\n")
    t0 = time.perf_counter()
    r = analyze(client, "big.net", text)
    assert time.perf_counter() - t0 < 2      # its 3,600 structural assignments are not expanded on each edit
    assert r["controls"] == [{"name": "C", "default": "32", "kind": "list", "values": ["16", "32", "64"]},
                             {"name": "N", "default": "2", "kind": "range", "min": 1, "max": 60},
                             {"name": "M", "default": "2", "kind": "range", "min": 1, "max": 60},
                             {"name": "pool", "kind": "switch", "values": ["on", "off"], "default": "on"}]
    r = analyze(client, "big.net", "input 8x8x1\nlet N = 2 in 1..999999\nRELU*N\n")
    assert r["controls"] == [{"name": "N", "default": "2", "kind": "range", "min": 1, "max": 999999}]
    r = analyze(client, "big.net", "input 8x8x1\nlet N = 2 in 1..3\nRELU\n")
    assert r["ok"] and r["controls"] == [] and "nothing reads it" in r["family_error"]


def test_resnet_block_switches_are_not_controls(client, served):
    r = analyze(client, "resnet18.net", open(served / "resnet18.net").read())
    assert r["controls"] == []          # `downsample` is switched per call by the block's parameter


def test_errors_with_spans_hints_and_arithmetic(client):
    r = analyze(client, "lenet5.net", "input 7x7x1\nCONV(1, 3, s=3) - FOO\n")
    assert not r["ok"]
    (d,) = r["diagnostics"]
    assert (d["code"], d["line"], d["col"], d["end_col"], d["here"]) == ("E201", 2, 19, 22, True)
    assert d["hint"] and d["file"] == "lenet5.net"
    r = analyze(client, "lenet5.net", "input 7x7x1\nCONV(1, 3, s=3)\n")
    (w,) = r["diagnostics"]
    assert r["ok"] and w["severity"] == "warning" and w["code"] == "W301" and "2.33" in w["arithmetic"]
    r = analyze(client, "lenet5.net", "input 8x8x1\n{ CONV(4, 3) | CONV(4, 5) }\n")
    (d,) = r["diagnostics"]
    assert d["code"] == "E302" and any(n["here"] and n["line"] == 2 for n in d["notes"])


def test_errors_in_an_include_name_its_file(client, served):
    (served / "lib" / "bad.net").write_text("def blk = CONV(4, 3) - NOPE\n")
    r = analyze(client, "x.net", 'include "lib/bad.net"\ninput 8x8x1\nblk\n')
    d = r["diagnostics"][0]
    assert d["code"] == "E201" and d["file"] == "lib/bad.net" and not d["here"]
    assert str(served) not in json.dumps(r)        # paths shown relative to DIR


def test_an_include_cannot_leave_dir(client):
    r = analyze(client, "lenet5.net", 'include "../secret.net"\ninput 8x8x1\nFC(3)\n')
    assert r["diagnostics"][0]["code"] == "E208"
    r = analyze(client, "lenet5.net", 'include "link_out.net"\ninput 8x8x1\nFC(3)\n')
    assert r["diagnostics"][0]["code"] == "E208"


def test_big_and_hostile_inputs_get_the_clis_errors(client):
    t0 = time.perf_counter()
    r = analyze(client, "lenet5.net", "input 8x8x1\n" + "# padding\n" * 1_000_000)     # a 10 MB paste
    assert [d["code"] for d in r["diagnostics"]] == ["E103"] and "limit is 2,000,000" in r["diagnostics"][0]["message"]
    r = analyze(client, "lenet5.net", "input 8x8x1\nRELU*1000000000000\n")
    assert r["diagnostics"][0]["code"] in ("E206", "E401")
    r = analyze(client, "lenet5.net", "input 8x8x1\n" + "[" * 10_000 + "RELU" + "]" * 10_000 + "\n")
    assert r["diagnostics"][0]["code"] == "E104"
    r = analyze(client, "lenet5.net", "input 8x8x1\ndef a = a\na\n")
    assert r["diagnostics"][0]["code"] == "E401"
    assert time.perf_counter() - t0 < 30
    big = b'{"path": "lenet5.net", "text": "' + b"x" * (17 * 2 ** 20) + b'"}'
    assert client.post("/api/analyze", headers=AUTH, content=big).status_code == 413
    assert client.post("/api/analyze", headers=AUTH, content=b"{not json").status_code == 400
    assert client.post("/api/analyze", headers=AUTH, json=[1, 2]).status_code == 400
    assert client.post("/api/analyze", headers=AUTH, json={"path": "lenet5.net"}).status_code == 400
    assert client.post("/api/analyze", headers=AUTH, json={"path": "lenet5.net", "text": "x",
                                                           "bindings": {"N": [1]}}).status_code == 400
    assert analyze(client, "lenet5.net", "input 8x8x1\nFC(3)\n")["ok"]                   # and it still serves


def test_concurrent_edits_each_get_their_own_answer(client, served):
    text = open(served / "family.net").read()
    want = {n: cnndsl.load(served / "family.net", bindings={"N": n}).report()["totals"]["params"] for n in range(1, 7)}
    got, errors = {}, []

    def edit(i):
        n = i % 6 + 1
        try:
            r = analyze(client, "family.net", text.replace("FC(10)", f"FC({10 + i})"), {"N": str(n)})
            got[i] = (n, r["report"]["totals"]["params"], r["report"]["layers"][-1]["out"])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=edit, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 24
    for i, (n, params, out) in got.items():
        fc_in = want[n] - 10 * (1 + 2 ** 12)   # the FC's weights and biases at FC(10): 4096 inputs
        assert out == [10 + i] and params == fc_in + (10 + i) * (4096 + 1)


# ---- diagram, search, downloads ---------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["graph", "volumes"])
def test_diagram(client, served, style):
    r = client.post("/api/diagram", headers=AUTH, json={"path": "lenet5.net", "text": open(served / "lenet5.net").read(),
                                                        "style": style})
    assert r.status_code == 200
    svg = r.json()["svg"]
    assert svg.startswith("<svg") and "c1" in svg and "<script" not in svg
    bad = client.post("/api/diagram", headers=AUTH, json={"path": "lenet5.net", "text": "input 8x8x1\nFOO\n"})
    assert bad.status_code == 400 and bad.json()["diagnostics"][0]["code"] == "E201"


def test_search_pareto_equals_cnndsl_search(client, served):
    from cnndsl.search.enumerate import search
    from cnndsl.search.space import Space
    text = open(served / "family.net").read()
    r = client.post("/api/search", headers=AUTH, json={"path": "family.net", "text": text, "pareto": "params,rf"})
    assert r.status_code == 200, r.text
    got = r.json()
    want = search(Space(cnndsl.parse(text, str(served / "family.net"))), pareto=("params", "rf"), workers=1)
    assert [m["bindings"] for m in got["pareto"]] == [m["bindings"] for m in want["pareto"]]
    assert got["count"] == 6 and got["sampled"] is False
    r = client.post("/api/search", headers=AUTH, json={"path": "lenet5.net", "text": open(served / "lenet5.net").read()})
    assert r.status_code == 400 and "not a family" in r.json()["error"]
    r = client.post("/api/search", headers=AUTH, json={"path": "cs231n_pattern.net", "optionals": True,
                                                       "text": open(served / "cs231n_pattern.net").read()})
    assert r.json()["space"]["variables"] == {"pool": [True, False]}


def test_downloads(client, served):
    text = open(served / "lenet5.net").read()

    def get(fmt):
        r = client.post("/api/download", headers=AUTH, json={"path": "lenet5.net", "text": text, "format": fmt})
        assert r.status_code == 200, r.text
        assert r.headers["content-disposition"] == f'attachment; filename="lenet5.{fmt}"'
        return r.content
    py = get("py").decode()
    compile(py, "lenet5.py", "exec")
    assert py == cnndsl.load(served / "lenet5.net").torch_source()
    assert json.loads(get("json"))["totals"] == cli_report(served / "lenet5.net")["totals"]
    assert get("svg").startswith(b"<svg")
    import onnx
    model = onnx.load_from_string(get("onnx"))
    assert [o.name for o in model.graph.output] == ["output"]
    r = client.post("/api/download", headers=AUTH, json={"path": "lenet5.net", "text": text, "format": "exe"})
    assert r.status_code == 400


# ---- training -----------------------------------------------------------------------------------------------
def wait_state(client, states, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        s = client.get("/api/train", headers=AUTH).json()
        if s["state"] in states:
            return s
        time.sleep(0.05)
    raise AssertionError(f"training never reached {states}: {s}")


def test_training_one_run_at_a_time_stop_resume(client, served):
    text = open(served / "lenet5.net").read()
    body = {"path": "lenet5.net", "text": text, "data": "digits", "options": {"epochs": 2, "batch": 64}}
    r = client.post("/api/train", headers=AUTH, json={**body, "options": {"epochs": 0}})
    assert r.status_code == 400 and "--epochs" in r.json()["error"]
    r = client.post("/api/train", headers=AUTH, json={**body, "options": {"evil": 1}})
    assert r.status_code == 400 and "unknown training options" in r.json()["error"]
    assert client.post("/api/train", headers=AUTH, json={**body, "data": "../"}).status_code == 403
    assert client.post("/api/train", headers=AUTH, json={**body, "out": "../run"}).status_code == 403
    runner = client.app_.runner
    gate = threading.Event()
    real = runner._on_epoch_end

    def slow_epoch_end(e):  # hold the run after its first epoch, so that the tests below see it running
        real(e)
        gate.wait(30)
    runner._on_epoch_end = slow_epoch_end
    r = client.post("/api/train", headers=AUTH, json=body)
    assert r.status_code == 200 and r.json()["out"] == "runs/lenet5"
    t0 = time.time()
    while not any(e[1] == "epoch_end" for e in runner._log) and time.time() - t0 < 60:
        time.sleep(0.05)
    again = client.post("/api/train", headers=AUTH, json=body)
    assert again.status_code == 409 and "in progress" in again.json()["error"]
    stopped = client.post("/api/train/stop", headers=AUTH, json={}).json()
    assert stopped["state"] == "stopping"
    gate.set()
    s = wait_state(client, ("stopped", "failed", "done"))
    assert s["state"] == "stopped", s
    runner._on_epoch_end = real
    run = served / "runs" / "lenet5"
    assert len(open(run / "metrics.jsonl").readlines()) == 1     # the finished epoch's checkpoint stays
    r = client.post("/api/train", headers=AUTH, json={**body, "resume": True})
    assert r.status_code == 200
    s = wait_state(client, ("done", "failed"))
    assert s["state"] == "done", s
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    assert [row["epoch"] for row in rows] == [1, 2]
    assert sorted(os.listdir(run)) == ["checkpoint.safetensors", "curves.png", "metrics.jsonl", "run.json",
                                       "spec.net", "weights.safetensors"]
    events = [e[1] for e in runner._log]
    assert events[0] == "run" and "start" in events and "progress" in events and events[-1] == "run"
    assert runner._visuals is not None and json.loads(runner._visuals[2])["filters"]["layer"] == "c1"


def test_event_stream_replays_the_run(client, served):
    """A page that connects after a run gets its state and its events (the stream's first lines)."""
    import asyncio
    runner = client.app_.runner
    runner._publish("progress", {"epoch": 1, "loss": 0.5})
    loop = asyncio.new_event_loop()
    try:
        queue = asyncio.Queue()
        missed = runner.subscribe(loop, queue)
        assert [m[1] for m in missed] == ["run", "progress"]
        runner._publish("epoch_end", {"epoch": 1})
        loop.run_until_complete(asyncio.sleep(0))
        assert queue.get_nowait()[1] == "epoch_end"
        runner.unsubscribe(queue)
    finally:
        loop.close()
    from cnndsl.serve.app import _sse
    assert _sse((3, "progress", '{"a": 1}')) == 'id: 3\nevent: progress\ndata: {"a": 1}\n\n'


# ---- what the editing path imports -------------------------------------------------------------------------
def test_the_editing_path_never_imports_torch(served):
    """Listing, reading, analysing, drawing, searching, saving, the .py, .json and .svg downloads: no torch,
    onnx, matplotlib or sympy (the .onnx download and training import them when asked)."""
    code = f"""
import sys
from starlette.testclient import TestClient
from cnndsl.serve.app import make_app
c = TestClient(make_app({str(served)!r}, token="t" * 32), base_url="http://127.0.0.1:1")
h = {{"X-Cnndsl-Token": "t" * 32}}
text = open({str(served / 'family.net')!r}).read()
for call in (lambda: c.get("/?token=" + "t" * 32), lambda: c.get("/api/files", headers=h),
             lambda: c.get("/api/file?path=family.net", headers=h), lambda: c.get("/api/stat?path=family.net", headers=h),
             lambda: c.post("/api/analyze", headers=h, json={{"path": "family.net", "text": text, "bindings": {{"N": "2"}}}}),
             lambda: c.post("/api/diagram", headers=h, json={{"path": "family.net", "text": text, "style": "volumes"}}),
             lambda: c.post("/api/diagram", headers=h, json={{"path": "family.net", "text": text}}),
             lambda: c.post("/api/search", headers=h, json={{"path": "family.net", "text": text}}),
             lambda: c.post("/api/download", headers=h, json={{"path": "family.net", "text": text, "format": "py"}}),
             lambda: c.post("/api/download", headers=h, json={{"path": "family.net", "text": text, "format": "json"}}),
             lambda: c.post("/api/download", headers=h, json={{"path": "family.net", "text": text, "format": "svg"}}),
             lambda: c.put("/api/file", headers=h, json={{"path": "family.net", "text": text}}),
             lambda: c.get("/api/train", headers=h)):
    assert call().status_code == 200
heavy = sorted(m for m in ("torch", "onnx", "matplotlib", "sympy") if m in sys.modules)
print(",".join(heavy) or "none")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"


def test_cli_serve_binds_prints_and_refuses(tmp_path, capsys):
    from cnndsl.serve import Server
    s = Server(str(tmp_path), port=0)
    try:
        assert s.url.startswith(f"http://127.0.0.1:{s.port}/?token=") and len(s.token) == 48
        assert cli.main(["serve", str(tmp_path), "--no-browser", "--port", str(s.port)]) == 2
        assert f"port {s.port} is in use" in capsys.readouterr().err
    finally:
        s.sock.close()
    assert cli.main(["serve", str(tmp_path / "nope"), "--no-browser"]) == 2
    assert "not a folder" in capsys.readouterr().err
