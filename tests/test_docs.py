"The docs site, built as `make docs` builds it, opened page by page in headless Chromium: every page loads, its figures show, no internal link is broken, nothing is fetched from the web."
import json, shutil, subprocess, sys, threading, time, urllib.request
from functools import partial
from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler
from pathlib import Path
from urllib.parse import urldefrag
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((shutil.which(c) for c in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(c)), None)

@pytest.fixture(scope='module')
def site():
    "The site, built from this checkout (executed copies where cached, the demo run where there is one)."
    r = subprocess.run([sys.executable, '-m', 'chatmimic.docs', '--no-execute', '--root', ROOT], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return ROOT/'_docs'

def test_every_notebook_has_a_page_and_no_link_is_broken(site):
    from chatmimic.docs import broken_links, source_notebooks
    for nb in source_notebooks(ROOT/'nbs'): assert (site/f'{nb.stem}.html').exists(), nb.name
    assert (site/'demo.html').exists() and (site/'search.json').exists()
    assert broken_links(site) == []
    api = (site/'90_pipeline.html').read_text()
    assert 'run_pipeline' in api and 'Run the stage notebooks of' in api  # the API reference: signatures and docstrings

class Server:
    "The site on 127.0.0.1 (a free port), noting every request that was not answered with the file."
    def __init__(self, root):
        self.errors = []
        srv = self
        class H(SimpleHTTPRequestHandler):
            def log_message(self, fmt, *a): pass
            def send_error(self, code, *a, **k):
                srv.errors.append((code, self.path)); super().send_error(code, *a, **k)
        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), partial(H, directory=str(root)))
        self.base = f'http://127.0.0.1:{self.httpd.server_address[1]}/'
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
    def close(self): self.httpd.shutdown(); self.httpd.server_close()

class Chromium:
    "Headless Chromium driven over the DevTools protocol (websocket-client, a Jupyter dependency)."
    def __init__(self, profile):
        self.p = subprocess.Popen([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                                   '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-extensions',
                                   f'--user-data-dir={profile}', '--remote-debugging-port=0', '--remote-allow-origins=*', 'about:blank'],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(profile)/'DevToolsActivePort'
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip(): break
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        pages = json.loads(urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=10).read())
        import websocket
        self.ws = websocket.create_connection(next(p for p in pages if p['type'] == 'page')['webSocketDebuggerUrl'], timeout=60, suppress_origin=True)
        self.n = 0
        for m in ('Page.enable', 'Network.enable', 'Runtime.enable'): self.call(m)

    def call(self, method, **params):
        self.n += 1; self.ws.send(json.dumps({'id': self.n, 'method': method, 'params': params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get('id') == self.n: return m.get('result', {})
            self.events.append(m) if hasattr(self, 'events') else None

    def load(self, url, timeout=60) -> dict:
        "Open `url`; returns its HTTP status, failed and external requests, JS exceptions, images and links."
        self.events, t0 = [], time.time()
        self.call('Page.navigate', url=url)
        while not any(e.get('method') == 'Page.loadEventFired' for e in self.events):
            assert time.time() - t0 < timeout, f'{url} did not finish loading'
            self.events.append(json.loads(self.ws.recv()))
        time.sleep(0.2)
        js = ("JSON.stringify({imgs: Array.from(document.images).map(i => [i.currentSrc || i.src, i.complete && i.naturalWidth > 0]),"
              " links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href)})")
        page = json.loads(self.call('Runtime.evaluate', expression=js, returnByValue=True)['result']['value'])
        ev = self.events
        reqs = {e['params']['requestId']: e['params']['request']['url'] for e in ev if e.get('method') == 'Network.requestWillBeSent'}
        status = [e['params']['response']['status'] for e in ev if e.get('method') == 'Network.responseReceived' and e['params']['type'] == 'Document']
        return dict(page, status=status[0] if status else None, requests=list(reqs.values()),
                    failed=[reqs.get(e['params']['requestId']) for e in ev if e.get('method') == 'Network.loadingFailed'],
                    exceptions=[e['params']['exceptionDetails'].get('text') for e in ev if e.get('method') == 'Runtime.exceptionThrown'])

    def close(self):
        self.ws.close(); self.p.terminate(); self.p.wait(10)

@pytest.mark.skipif(CHROMIUM is None, reason='needs Chromium (Debian: apt-get install chromium; .ci/run installs it)')
def test_site_in_headless_chromium(site, tmp_path):
    srv, br = Server(site), Chromium(tmp_path/'profile')
    try:
        todo, seen, links, bad = [srv.base + p.relative_to(site).as_posix() for p in sorted(site.rglob('*.html'))], set(), set(), []
        imgs = {}
        while todo:
            url = todo.pop()
            if url in seen: continue
            seen.add(url)
            r = br.load(url)
            if r['status'] != 200: bad.append(f'{url}: HTTP {r["status"]}')
            bad += [f'{url}: failed request {u}' for u in r['failed'] if u and not u.startswith('data:')]
            bad += [f'{url}: fetched from the web {u}' for u in r['requests'] if not u.startswith((srv.base, 'data:', 'about:', 'blob:'))]
            bad += [f'{url}: JavaScript error {x}' for x in r['exceptions']]
            bad += [f'{url}: image does not show {s}' for s, ok in r['imgs'] if not ok]
            imgs[url] = len(r['imgs'])
            for l in r['links']:
                l = urldefrag(l)[0]
                if l.startswith(srv.base): links.add(l)
                if l.startswith(srv.base) and l.endswith('.html'): todo.append(l)
        for l in sorted(links - seen):  # every other internal link (a CSV, a PNG) answers too
            try: urllib.request.urlopen(l, timeout=10).read(1)
            except Exception as e: bad.append(f'broken link {l}: {e}')
        bad += [f'HTTP {c} for {p}' for c, p in srv.errors if p != '/favicon.ico']  # the browser asks for a favicon by itself
        assert not bad, '\n'.join(bad[:30])
        assert len(seen) >= 20 and srv.base + 'index.html' in seen
        if (ROOT/'images').is_dir(): assert imgs[srv.base + 'index.html'] >= 1  # the README's demo figures
        if 'The demo run' in (site/'demo.html').read_text() and (site/'demo'/'report.md').exists():
            assert imgs[srv.base + 'demo.html'] >= 1  # the published run's loss curves
    finally:
        br.close(); srv.close()
