"""The page of `cnndsl serve` in a real browser: Debian's Chromium driven by Selenium through the system
chromedriver (nothing downloaded). Type an error and see it underlined at its line and column, with its
message and hint on hover; fix it and see the report; move a slider and see the parameters of
`cnndsl report -D`; save and find the editor's text on disk, change the file on disk and see the editor
follow; train LeNet-5 on digits for 2 epochs and see the curves and the filters change, and the run
folder hold what `cnndsl train` writes, with the same figures.

Without Chromium these tests skip, saying how to get it: `apt-get install chromium chromium-driver`
(.ci/run does that where it runs as root) and `pip install selenium` (the test extra). Screenshots go to
$CNNDSL_SCREENSHOTS (a folder) when it is set.

    pytest tests/test_serve_browser.py -q
"""
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETS = os.path.join(ROOT, "nets")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
HOW = ("needs Debian's chromium and chromium-driver and the selenium package: apt-get install chromium "
       "chromium-driver (as root; .ci/run does it) and pip install selenium, then pytest tests/test_serve_browser.py")

try:
    import selenium  # noqa: F401
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    selenium = None

pytestmark = pytest.mark.skipif(selenium is None or not CHROMIUM or not DRIVER,
                                reason=f"no Chromium/chromedriver/selenium here: {HOW}")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-dev-shm-usage", "--window-size=1500,950")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("served")
    shutil.copy(os.path.join(NETS, "lenet5.net"), d / "lenet5.net")
    shutil.copy(os.path.join(NETS, "examples", "family.net"), d / "family.net")
    return d


@pytest.fixture(scope="module")
def server(folder):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "cnndsl", "serve", str(folder), "--no-browser", "--port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url, seen, t0 = None, "", time.time()
    while url is None and time.time() - t0 < 60:
        line = p.stdout.readline()
        if not line and p.poll() is not None:
            break
        seen += line
        m = re.search(r"http://127\.0\.0\.1:\d+/\?token=\w+", line)
        url = m.group(0) if m else None
    assert url, f"cnndsl serve printed no URL: {seen}"
    yield url
    p.send_signal(signal.SIGINT)
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
    assert "Traceback" not in p.stdout.read()


@pytest.fixture(scope="module")
def cli_run(folder, tmp_path_factory):
    """`cnndsl train` of the same spec, options and data as the page's run, started at once: it trains
    while the first tests drive the page, and the training test compares the two runs' folders."""
    out = tmp_path_factory.mktemp("cli") / "run"
    p = subprocess.Popen([sys.executable, "-m", "cnndsl", "train", str(folder / "lenet5.net"), "--data", "digits",
                          "--epochs", "2", "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, env={**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"})
    yield p, out
    if p.poll() is None:
        p.kill()


@pytest.fixture(scope="module")
def browser(server, cli_run):
    os.environ.setdefault("SE_OFFLINE", "true")   # Selenium Manager must not fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for f in FLAGS:
        options.add_argument(f)
    d = webdriver.Chrome(service=Service(DRIVER), options=options)
    d.set_script_timeout(30)
    yield d
    d.quit()


def shot(d, name):
    out = os.environ.get("CNNDSL_SCREENSHOTS")
    if out:
        os.makedirs(out, exist_ok=True)
        d.save_screenshot(os.path.join(out, name + ".png"))
    png = d.get_screenshot_as_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000   # a page was drawn, not a blank


def wait(d, what, timeout=20):
    return WebDriverWait(d, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(what))


def open_file(d, server, name):
    if d.current_url.startswith(server.split("?")[0]) and d.execute_script("return !!window.cnndsl"):
        before = renders(d)
        d.execute_script(f"window.cnndsl.open({name!r})")
        wait(d, f"return window.cnndsl.state.path === {name!r} && Number(document.body.dataset.renders) > {before}")
    else:
        d.get(f"{server}#file={name}")
        wait(d, f"return window.cnndsl && window.cnndsl.state.path === {name!r} && document.body.dataset.renders")


def renders(d):
    return int(d.execute_script("return document.body.dataset.renders || 0"))


def text(d):
    return d.execute_script("return window.cnndsl.view.state.doc.toString()")


def cli_report(path, *defines):
    from cnndsl import cli
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["report", str(path), "--format", "json", *sum((["-D", x] for x in defines), [])]) == 0
    return json.loads(buf.getvalue())


def test_error_underlined_then_fixed(browser, server, folder):
    d = browser
    open_file(d, server, "lenet5.net")
    editor = d.find_element(By.CSS_SELECTOR, ".cm-content")
    editor.click()
    editor.send_keys(Keys.CONTROL, Keys.END)
    editor.send_keys("\n- FOO(3)")
    mark = WebDriverWait(d, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".cm-lintRange-error"))[0]
    where = d.execute_script("""const v = window.cnndsl.view, el = arguments[0];
        const pos = v.posAtDOM(el, 0), line = v.state.doc.lineAt(pos);
        return [line.number, pos - line.from + 1, el.textContent];""", mark)
    typed = text(d).split("\n")
    line = next(i for i, x in enumerate(typed, 1) if "FOO(3)" in x)
    assert where == [line, typed[line - 1].index("FOO") + 1, "FOO(3)"] and line == len(typed)
    diag = d.execute_script("return document.querySelector('#diagnostics li').textContent")
    assert f"{where[0]}:{where[1]}" in diag and "E201" in diag and "unknown layer or block `FOO`" in diag
    ActionChains(d).move_to_element(mark).perform()
    tip = WebDriverWait(d, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".cm-tooltip-lint .diag"))[0]
    assert "unknown layer or block" in tip.text and "hint:" in tip.text
    assert d.find_element(By.ID, "verdict").text == "1 error"
    shot(d, "1-error-underlined")
    editor.send_keys(Keys.BACKSPACE * len("\n- FOO(3)"))
    wait(d, "return document.body.dataset.ok === 'true' && !document.querySelector('.cm-lintRange-error')")
    assert d.find_element(By.ID, "total-params").text == "61,706"      # LeNet-5's parameters
    assert d.find_element(By.ID, "saved").text == "saved"               # the text is the file's again
    shot(d, "2-fixed-report")


def test_diagram_with_figures_on_hover(browser, server, folder):
    d = browser
    open_file(d, server, "lenet5.net")
    d.find_element(By.CSS_SELECTOR, ".tabs button[data-tab=diagram]").click()
    tips = WebDriverWait(d, 20).until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('#diagram svg title')].map(t => t.textContent)"))
    assert any(t.startswith("c1 | CONV 5x5/1, 6 | 28x28x6 | 156 params") for t in tips), tips[:5]
    shot(d, "2b-diagram")
    d.find_element(By.CSS_SELECTOR, ".tabs button[data-tab=report]").click()


def test_slider_gives_report_D(browser, server, folder):
    d = browser
    open_file(d, server, "family.net")
    slider = d.find_element(By.CSS_SELECTOR, "input[type=range][data-name=N]")
    assert d.execute_script("return arguments[0].value", slider) == "3"     # the spec's own N
    assert d.find_element(By.ID, "total-params").text == f"{cli_report(folder / 'family.net')['totals']['params']:,}"
    for key, n in ((Keys.ARROW_RIGHT, 4), (Keys.ARROW_RIGHT, 5), (Keys.HOME, 1)):
        before = renders(d)
        slider.send_keys(key)
        wait(d, f"return Number(document.body.dataset.renders) > {before} && "
                f"(window.cnndsl.family.bindings.N || '3') === '{n}'")
        want = cli_report(folder / "family.net", f"N={n}")["totals"]["params"]
        WebDriverWait(d, 10).until(lambda d: d.find_element(By.ID, "total-params").text == f"{want:,}")
    shot(d, "3-slider")


def test_save_and_outside_changes(browser, server, folder):
    d = browser
    open_file(d, server, "family.net")
    editor = d.find_element(By.CSS_SELECTOR, ".cm-content")
    editor.click()
    editor.send_keys(Keys.CONTROL, Keys.END)
    editor.send_keys("\n# saved from the page")
    WebDriverWait(d, 10).until(lambda d: d.find_element(By.ID, "saved").text == "modified")
    editor.send_keys(Keys.CONTROL, "s")
    WebDriverWait(d, 10).until(lambda d: d.find_element(By.ID, "saved").text == "saved")
    on_disk = open(folder / "family.net", encoding="utf-8").read()
    assert on_disk == text(d) and on_disk.endswith("# saved from the page")
    (folder / "family.net").write_text(on_disk + "\n# changed elsewhere\n")     # another editor writes the file
    WebDriverWait(d, 10).until(lambda d: text(d).endswith("# changed elsewhere\n"))
    assert "changed on disk" in d.find_element(By.ID, "message").text
    shot(d, "4-saved")


def test_training_lenet5_on_digits(browser, server, folder, cli_run):
    d = browser
    open_file(d, server, "lenet5.net")
    d.find_element(By.CSS_SELECTOR, ".tabs button[data-tab=train]").click()
    epochs = d.find_element(By.ID, "train-epochs")
    epochs.clear()
    epochs.send_keys("2")
    d.execute_script("""window.seen = []; window.states = [];   // what the page shows, in order
        new MutationObserver(() => window.seen.push(document.querySelector('#filters').getAttribute('src')))
          .observe(document.querySelector('#filters'), {attributes: true, attributeFilter: ['src']});
        new MutationObserver(() => window.states.push(document.querySelector('#train-state').textContent))
          .observe(document.querySelector('#train-state'), {childList: true, characterData: true, subtree: true});""")
    d.find_element(By.ID, "train-start").click()
    wait(d, "return ['done', 'failed'].includes(document.querySelector('#train-state').dataset.state)", timeout=120)
    assert d.find_element(By.ID, "train-state").get_attribute("data-state") == "done", d.find_element(By.ID, "train-log").text
    filters = d.execute_script("return window.seen")
    progress = [t for t in d.execute_script("return window.states") if "images/s" in t]
    assert progress and re.search(r"epoch 2/2, step \d+/\d+ · loss [\d.]+ · acc [\d.]+ · [\d,]+ images/s · ETA [\d.]+ s",
                                  progress[-1]), progress[-3:]
    loss = d.find_element(By.CSS_SELECTOR, "#chart-loss svg")
    acc = d.find_element(By.CSS_SELECTOR, "#chart-acc svg")
    assert int(loss.get_attribute("data-points")) >= 40 and int(acc.get_attribute("data-points")) >= 40
    assert len(acc.find_elements(By.CSS_SELECTOR, "circle")) == 2          # a validation point per epoch
    assert len(set(filters)) >= 3, "the filters were not refreshed as it trained"
    maps = d.find_elements(By.CSS_SELECTOR, "#activations figure")
    assert [m.text.split()[0] for m in maps][:3] == ["input", "c1", "tanh1"]
    shot(d, "5-trained")
    run = folder / "runs" / "lenet5"
    p, cli_out = cli_run
    assert p.wait(120) == 0, p.stderr.read()
    assert sorted(os.listdir(run)) == sorted(os.listdir(cli_out))
    rows = [json.loads(x) for x in open(run / "metrics.jsonl")]
    cli_rows = [json.loads(x) for x in open(cli_out / "metrics.jsonl")]
    timing = ("images_per_s", "train_seconds", "seconds")
    assert [{k: v for k, v in r.items() if k not in timing} for r in rows] == \
           [{k: v for k, v in r.items() if k not in timing} for r in cli_rows]   # the same trainer, the same figures
