"""How fast the live page answers an edit (`cnndsl serve`), on ResNet-50 by default.

    python tools/bench_serve.py [--net nets/resnet50.net] [--edits 40] [--no-browser]

1. edit -> report JSON: the time from an edit's arrival at the server to its JSON answer, measured
   (a) in process: what the endpoint does (parse, bind, analyse, report, JSON), and (b) over HTTP to a
   real uvicorn server on loopback (keep-alive), the client's round trip. Goal: under 20 ms.
2. edit -> updated page, in Chromium (headless, Debian's chromium and chromedriver): from an edit's
   dispatch in the editor to the next frame painted after the report table and the diagnostics were
   redrawn; it includes the page's debounce (DEBOUNCE_MS in web/src/main.js). Goal: under 100 ms.

Each edit changes the text (a number in the head), so nothing is answered from a cache. Prints the
median, 90th percentile and max of each, and the CPU time of the in-process part beside its wall time.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def figures(name, ms):
    ms = sorted(ms)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    print(f"{name:<46} median {statistics.median(ms):7.2f} ms   p90 {p90:7.2f} ms   max {ms[-1]:7.2f} ms   (n={len(ms)})")
    return statistics.median(ms)


def edits(text, n):
    """n texts that differ from each other: the FC head's width changes."""
    m = re.search(r"let classes = (\d+)", text)
    if m:
        return [text.replace(m.group(0), f"let classes = {1000 + i}") for i in range(n)]
    return [text + f"\n# edit {i}\n" for i in range(n)]


def in_process(folder, rel, texts):
    from cnndsl.serve import live
    from cnndsl.serve.tree import Tree
    tree = Tree(folder)
    live.analyze(tree, rel, texts[0])          # warm: the grammar's tables, the imports
    wall, cpu = [], []
    for t in texts:
        w0, c0 = time.perf_counter(), time.process_time()
        json.dumps(live.analyze(tree, rel, t))
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    figures("edit -> report JSON, in process (wall)", wall)
    figures("edit -> report JSON, in process (CPU)", cpu)


def over_http(folder, rel, texts):
    import uvicorn
    from cnndsl.serve import Server
    server = Server(folder, port=0, token="b" * 48)
    u = uvicorn.Server(uvicorn.Config(server.app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=u.run, kwargs={"sockets": [server.sock]}, daemon=True)
    thread.start()
    while not u.started:
        time.sleep(0.01)
    conn = http.client.HTTPConnection("127.0.0.1", server.port)
    conn.connect()
    # http.client sends the headers and the body in two writes: without TCP_NODELAY, Nagle's algorithm
    # holds the body back until the server's delayed ACK (40 ms), which no browser would wait for
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = {"X-Cnndsl-Token": server.token, "Content-Type": "application/json"}
    ms = []
    for i, t in enumerate([texts[0]] + texts):
        body = json.dumps({"path": rel, "text": t})
        t0 = time.perf_counter()
        conn.request("POST", "/api/analyze", body, headers)
        r = conn.getresponse()
        data = r.read()
        if i:
            ms.append((time.perf_counter() - t0) * 1000)
        assert r.status == 200 and json.loads(data)["ok"], data[:300]
    figures("edit -> report JSON, HTTP round trip", ms)
    u.should_exit = True
    thread.join(10)


def in_chromium(folder, rel, n):
    chromium, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (chromium and driver):
        print("edit -> updated page: skipped (no chromium/chromedriver: apt-get install chromium chromium-driver)")
        return
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    os.environ.setdefault("SE_OFFLINE", "true")
    p = subprocess.Popen([sys.executable, "-m", "cnndsl", "serve", folder, "--no-browser", "--port", "0"],
                         stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    url = None
    while url is None:
        m = re.search(r"http://\S+token=\w+", p.stdout.readline())
        url = m.group(0) if m else None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for f in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--window-size=1500,950"):
        options.add_argument(f)
    d = webdriver.Chrome(service=Service(driver), options=options)
    try:
        d.set_script_timeout(30)
        d.get(f"{url}#file={rel}")
        while not d.execute_script("return !!(window.cnndsl && document.body.dataset.renders)"):
            time.sleep(0.05)
        ms = []
        for i in range(n + 3):
            took = d.execute_async_script("""
                const done = arguments[arguments.length - 1], i = arguments[0];
                const v = window.cnndsl.view, before = Number(document.body.dataset.renders);
                const m = /let classes = (\\d+)/.exec(v.state.doc.toString());
                const from = m.index + 'let classes = '.length;
                const t0 = performance.now();
                v.dispatch({changes: {from, to: from + m[1].length, insert: String(2000 + i)}});
                const wait = () => Number(document.body.dataset.renders) > before
                  ? requestAnimationFrame(() => setTimeout(() => {
                      const s = window.cnndsl.state.timing;
                      done([performance.now() - t0, s.sent - t0, s.answered - s.sent, s.drawn - s.answered]);
                    }, 0))
                  : setTimeout(wait, 1);
                wait();""", i)
            if i >= 3:   # the first edits warm the page's code paths
                ms.append(took)
        figures("edit -> updated page in Chromium (all)", [m[0] for m in ms])
        figures("  of which: edit -> request sent (debounce)", [m[1] for m in ms])
        figures("  of which: request -> answer (fetch, server)", [m[2] for m in ms])
        figures("  of which: answer -> page redrawn (DOM)", [m[3] for m in ms])
        figures("  of which: -> next frame painted", [m[0] - m[1] - m[2] - m[3] for m in ms])
    finally:
        d.quit()
        p.send_signal(signal.SIGINT)
        p.wait(15)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", default=os.path.join(ROOT, "nets", "resnet50.net"))
    ap.add_argument("--edits", type=int, default=40)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-serve-")
    try:
        shutil.copytree(os.path.join(ROOT, "nets", "lib"), os.path.join(folder, "lib"))
        rel = os.path.basename(args.net)
        shutil.copy(args.net, os.path.join(folder, rel))
        texts = edits(open(args.net).read(), args.edits)
        print(f"{rel}: {len(texts)} edits; {os.cpu_count()} CPUs (figures vary with the machine's load)")
        in_process(folder, rel, texts)
        over_http(folder, rel, texts)
        if not args.no_browser:
            in_chromium(folder, rel, args.edits)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
