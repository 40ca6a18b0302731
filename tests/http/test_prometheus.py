"""A real Prometheus (the Debian package) scrapes `churn serve` on loopback;
the test reads metrics back through Prometheus's HTTP API, and checks the
alerting-free scrape config with promtool.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, Suite, Workspace, customers  # noqa: E402

t = Suite("http_prometheus")
prom = shutil.which("prometheus")
if prom is None:
    t.skip("Prometheus scrapes the server", "prometheus is not installed (Debian package "
           "prometheus; scripts/install-deps installs it)")
    t.finish()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


ws = Workspace()
srv = None
pp = None
try:
    data = ws.train(rows=1500, seed=21)
    ws.churn("users", "add", "service1", "--role", "service", stdin="service-pass-1\n")
    srv = Server(ws)
    tok = srv.token("service")
    for person in customers(data, 5):
        srv.request("POST", "/v1/predict", person, token=tok)
    port = free_port()
    cfg = os.path.join(ws.dir, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: churn\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % srv.port)
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "config", cfg], capture_output=True, text=True)
        t.check("promtool check config", p.returncode == 0, p.stdout + p.stderr)
    log = open(os.path.join(ws.dir, "prometheus.log"), "w")
    pp = subprocess.Popen([prom, "--config.file=" + cfg,
                           "--storage.tsdb.path=" + os.path.join(ws.dir, "tsdb"),
                           "--web.listen-address=127.0.0.1:%d" % port],
                          stdout=log, stderr=subprocess.STDOUT)
    q = urllib.parse.quote('churn_predictions_total{label=~"churn|stay"}')
    url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (port, q)
    total, health = None, None
    deadline = time.time() + 40
    while time.time() < deadline:
        try:
            doc = json.load(urllib.request.urlopen(url, timeout=2))
            res = doc["data"]["result"]
            if res:
                total = sum(float(r["value"][1]) for r in res)
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    t.check("Prometheus scraped churn_predictions_total (5 predictions)", total == 5, total)
    try:
        tg = json.load(urllib.request.urlopen(
            "http://127.0.0.1:%d/api/v1/targets" % port, timeout=2))
        health = tg["data"]["activeTargets"][0]["health"]
    except (OSError, ValueError, KeyError, IndexError):
        pass
    t.check("the scrape target is healthy (no parse errors)", health == "up", health)
finally:
    if pp is not None:
        pp.terminate()
        try:
            pp.wait(10)
        except subprocess.TimeoutExpired:
            pp.kill()
    if srv is not None:
        srv.stop()
    ws.cleanup()
t.finish()
