"""`make lab` as a user meets it, in headless Chromium: the parse notebook opens on the project's kernel, runs top to bottom
through JupyterLab's Run menu command, shows its table, and nothing is fetched from outside 127.0.0.1, neither by the page
nor by the server or the kernel. The notebook is a copy in a temporary folder; Jupyter's config, data, runtime, settings
and workspaces are temporary too. The screenshot goes to $CHATMIMIC_LAB_SCREENSHOT when set (images/lab.png for the README)."""
import json, os, re, shutil, signal, struct, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((shutil.which(c) for c in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(c)), None)
NOTEBOOK = '00_parse.ipynb'

# Every Python process the server starts (itself, the kernel) records and refuses any connection or name lookup that is
# not local. An audit hook sees socket.connect and socket.getaddrinfo before the system call, so nothing is sent.
HOOK = '''
import os, sys
if os.environ.get('CHATMIMIC_NET_LOG'):  # which processes carry the hook
    with open(os.environ['CHATMIMIC_NET_LOG'] + '.procs', 'a') as f: f.write(' '.join(sys.orig_argv) + '\\n')
def _outbound(event, args, _log=os.environ.get('CHATMIMIC_NET_LOG')):
    if event not in ('socket.connect', 'socket.getaddrinfo') or not _log: return
    addr = args[1] if event == 'socket.connect' else args[:2]
    if not isinstance(addr, tuple) or addr[0] in (None, '', 'localhost', '127.0.0.1', '::1', b'localhost', b'127.0.0.1'): return
    with open(_log, 'a') as f: f.write(f'{os.getpid()} {event} {addr[:2]!r}\\n')
    raise OSError(f'outbound connection refused by the test: {addr[:2]!r}')
sys.addaudithook(_outbound)
'''

def lab_env(tmp: Path, net_log: Path) -> dict:
    "The environment `make lab` runs in: Jupyter's own folders in `tmp`, the outbound hook on, autosave off."
    (tmp/'hook').mkdir(); (tmp/'hook'/'sitecustomize.py').write_text(HOOK)
    settings = tmp/'user-settings'/'@jupyterlab'/'docmanager-extension'
    settings.mkdir(parents=True); (settings/'plugin.jupyterlab-settings').write_text('{"autosave": false}')
    env = {k: v for k, v in os.environ.items() if not k.startswith(('JUPYTER', 'MAKE', 'MFLAGS'))}
    return env | dict(PYTHONPATH=os.pathsep.join([str(tmp/'hook')] + [p for p in [os.environ.get('PYTHONPATH')] if p]),
                      CHATMIMIC_NET_LOG=str(net_log), JUPYTER_CONFIG_DIR=str(tmp/'config'), JUPYTER_DATA_DIR=str(tmp/'data'),
                      JUPYTER_RUNTIME_DIR=str(tmp/'runtime'), JUPYTERLAB_SETTINGS_DIR=str(tmp/'user-settings'),
                      JUPYTERLAB_WORKSPACES_DIR=str(tmp/'workspaces'), IPYTHONDIR=str(tmp/'ipython'))

class Chromium:
    "Headless Chromium over the DevTools protocol (websocket-client), keeping every event it reports."
    def __init__(self, profile, width=1400, height=1000):
        self.p = subprocess.Popen([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                                   '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-extensions',
                                   f'--window-size={width},{height}', f'--user-data-dir={profile}', '--remote-debugging-port=0',
                                   '--remote-allow-origins=*', 'about:blank'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, t0 = Path(profile)/'DevToolsActivePort', time.time()
        while True:  # the port file, then the port answering: both take a while on a loaded machine
            try:
                pages = json.loads(urllib.request.urlopen(f'http://127.0.0.1:{port_file.read_text().split()[0]}/json/list', timeout=10).read())
                break
            except (OSError, IndexError):
                assert time.time() - t0 < 60 and self.p.poll() is None, 'Chromium did not start'
                time.sleep(0.2)
        import websocket
        self.ws = websocket.create_connection(next(p for p in pages if p['type'] == 'page')['webSocketDebuggerUrl'],
                                              timeout=300, suppress_origin=True)
        self.n, self.events = 0, []
        for m in ('Page.enable', 'Network.enable', 'Runtime.enable'): self.call(m)
        self.call('Emulation.setDeviceMetricsOverride', width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method, **params):
        self.n += 1; self.ws.send(json.dumps({'id': self.n, 'method': method, 'params': params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get('id') == self.n:
                assert 'error' not in m, (method, m['error'])
                return m.get('result', {})
            self.events.append(m)

    def js(self, expression, wait=False):
        "The value of a JavaScript expression in the page (awaited when `wait`); a thrown error fails the test."
        r = self.call('Runtime.evaluate', expression=expression, returnByValue=True, awaitPromise=wait)
        assert 'exceptionDetails' not in r, r['exceptionDetails']
        return r['result'].get('value')

    def until(self, expression, timeout, what, wait=False):
        t0 = time.time()
        while not self.js(expression, wait):
            assert time.time() - t0 < timeout, f'{what}: not after {timeout} s'
            time.sleep(0.3)

    def close(self):
        self.ws.close(); self.p.terminate(); self.p.wait(10)

def png_size(b: bytes) -> tuple[int, int]:
    assert b[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    return struct.unpack('>II', b[16:24])

def test_outbound_hook_catches_a_connection(tmp_path):
    "The control: the hook records and refuses a connection to a documentation-only address before anything is sent."
    log = tmp_path/'net.log'
    r = subprocess.run([sys.executable, '-c', "import socket\ntry: socket.create_connection(('192.0.2.1', 9), timeout=1)\n"
                        "except OSError as e: print(e)"], env=lab_env(tmp_path, log), capture_output=True, text=True, timeout=60)
    assert 'refused by the test' in r.stdout, r.stdout + r.stderr
    assert '192.0.2.1' in log.read_text()

SEPARATOR = re.compile(r'^-+(  -+)+$', re.M)  # the rule under the header of a plain-text table (parse.format_table)

def shows_table(outputs) -> bool:
    "An output is a table (HTML or plain text) or a figure."
    text = lambda v: ''.join(v) if isinstance(v, list) else (v or '')
    for o in outputs:
        data = o.get('data', {})
        if '<table' in text(data.get('text/html')) or 'image/png' in data or 'image/svg+xml' in data: return True
        if SEPARATOR.search(text(o.get('text')) + '\n' + text(data.get('text/plain'))): return True
    return False

def as_user(tmp: Path, env: dict) -> tuple[list, dict, Path]:
    """The command prefix, environment and virtual environment of `nobody`, a user who is not root and owns `tmp`.
    The project's .venv runs a Python under /root, which only root may run: the user gets a venv of their own from Debian's
    Python 3 (the same minor version), whose site-packages adds the project's and whose share/ is the project's (JupyterLab's
    assets, the settings overrides, the kernel spec), with `jupyter` and `jupyter-lab` scripts of its own."""
    import pwd
    py = Path('/usr/bin/python3')
    if not py.exists() or subprocess.run([py, '-c', f'import sys; sys.exit(sys.version_info[:2] != {tuple(sys.version_info[:2])})']).returncode:
        pytest.skip(f'needs a Python {sys.version_info[0]}.{sys.version_info[1]} that a user who is not root may run, at /usr/bin/python3')
    u = pwd.getpwnam('nobody')
    pre = ['setpriv', f'--reuid={u.pw_uid}', f'--regid={u.pw_gid}', '--clear-groups']
    def own():
        for d, dirs, files in os.walk(tmp):
            for x in [d, *(Path(d)/f for f in dirs + files)]: os.lchown(x, u.pw_uid, u.pw_gid)
    own(); venv = tmp/'venv'
    subprocess.run(pre + [py, '-m', 'venv', '--without-pip', venv], check=True, cwd=tmp)
    site = next((venv/'lib').glob('python3*'))/'site-packages'
    (site/'_chatmimic_project.pth').write_text(f"import site; site.addsitedir({str(next((ROOT/'.venv'/'lib').glob('python3*'))/'site-packages')!r})\n")
    shutil.rmtree(venv/'share', ignore_errors=True); (venv/'share').symlink_to(ROOT/'.venv'/'share')
    for name, mod in (('jupyter', 'jupyter_core.command'), ('jupyter-lab', 'jupyterlab.labapp')):
        (venv/'bin'/name).write_text(f'#!{venv}/bin/python\nimport sys\nfrom {mod} import main\nsys.exit(main())\n'); (venv/'bin'/name).chmod(0o755)
    (venv/'.installed').touch(); own()
    return pre, env | dict(HOME=str(tmp), USER='nobody', LOGNAME='nobody'), venv

@pytest.mark.skipif(CHROMIUM is None, reason='needs Chromium (Debian: apt-get install chromium)')
@pytest.mark.parametrize('user', ['caller', 'not root'])
def test_make_lab_runs_the_parse_notebook_in_chromium(tmp_path, user):
    "`make lab` as whoever runs the tests, and (when that is root) again as a user who is not: `--allow-root` only for root."
    root = os.getuid() == 0
    if user == 'not root':
        if not root: pytest.skip('the tests run as a user who is not root: the caller case is that run')
        tmp_path = Path(__import__('tempfile').mkdtemp(prefix='chatmimic-lab-'))  # pytest's own folder is root's alone (0700)
    try: _lab_in_chromium(tmp_path, user == 'not root')
    finally:
        if user == 'not root': shutil.rmtree(tmp_path, ignore_errors=True)

def _lab_in_chromium(tmp_path: Path, drop: bool):
    work = tmp_path/'repo'; (work/'nbs').mkdir(parents=True)  # a copy: settings.ini for the notebook's nbdev_export cell
    shutil.copy(ROOT/'settings.ini', work); shutil.copy(ROOT/'nbs'/NOTEBOOK, work/'nbs')
    original = (work/'nbs'/NOTEBOOK).read_bytes()
    net_log, server_log = tmp_path/'net.log', tmp_path/'lab.log'
    env = lab_env(tmp_path, net_log)
    # `make lab` itself (the install stamp taken as built: pip never runs here), on a port the system picks, with the app
    # object on `window` so the test can reach JupyterLab's command registry.
    lab_args = ['lab', f'LAB_DIR={work/"nbs"}', f'LAB_CHECKPOINTS={tmp_path/"checkpoints"}', 'ARGS=--no-browser --port=0 --expose-app-in-browser']
    cmd, venv = ['make', '-s', '-o', '.venv/.installed', *lab_args], ROOT/'.venv'
    if drop:  # the same Makefile target, run by that user in their own environment
        pre, env, venv = as_user(tmp_path, env)
        cmd = [*pre, 'make', '-s', f'VENV={venv}', '-o', f'{venv}/.installed', *lab_args]
    with open(server_log, 'w') as out:
        lab = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    br = None
    try:
        t0 = time.time()
        while not (m := re.search(r'http://127\.0\.0\.1:(\d+)/lab\?token=(\w+)', server_log.read_text())):
            assert lab.poll() is None, f'make lab stopped:\n{server_log.read_text()[-3000:]}'
            assert time.time() - t0 < 120, f'make lab printed no URL:\n{server_log.read_text()[-3000:]}'
            time.sleep(0.3)
        base, token = f'http://127.0.0.1:{m[1]}/', m[2]
        with pytest.raises(urllib.error.HTTPError) as e: urllib.request.urlopen(base + 'api/contents', timeout=30)
        assert e.value.code == 403  # the token is required
        get = lambda path: json.loads(urllib.request.urlopen(f'{base}{path}?token={token}', timeout=30).read())
        schema = get('lab/api/settings/@jupyterlab/apputils-extension:notification')['schema']['properties']
        assert (schema['fetchNews']['default'], schema['checkForUpdates']['default']) == ('false', False), \
            'JupyterLab news or update checks are on: make install copies .jupyter/overrides.json into the environment'

        br = Chromium(tmp_path/'profile')
        br.call('Page.navigate', url=f'{base}lab/tree/{NOTEBOOK}?reset&token={token}')
        panel, kernel = 'window.nbPanel', 'window.nbPanel.sessionContext.session?.kernel'
        br.until(f'window.jupyterapp && ({panel} = [...jupyterapp.shell.widgets("main")].find(w => w.context?.path === "{NOTEBOOK}"))'
                 f' && {panel}.context.isReady && {kernel}?.connectionStatus === "connected" && {kernel}?.status === "idle"',
                 180, f'{NOTEBOOK} open with an idle kernel')
        br.js(f'jupyterapp.shell.activateById({panel}.id)')
        assert br.js('document.querySelectorAll(".jp-Dialog").length') == 0  # no kernel chooser: the kernel was preselected
        assert br.js(f'{kernel}.name') == 'python3'
        procs = __import__('psutil').Process(lab.pid).children(recursive=True)
        kernels = [p for p in procs if 'ipykernel_launcher' in p.cmdline()]
        assert len(kernels) == 1 and Path(kernels[0].cmdline()[0]).parent == venv/'bin', [p.cmdline() for p in kernels]
        server = [p for p in procs if 'jupyter-lab' in [Path(a).name for a in p.cmdline()[:2]]]  # `jupyter lab` execs jupyter-lab
        assert len(server) == 1 and ('--allow-root' in server[0].cmdline()) == (os.getuid() == 0 and not drop), [p.cmdline() for p in server]
        assert {p.uids().real for p in [*server, *kernels]} == {os.stat(tmp_path).st_uid if drop else os.getuid()}  # who runs them

        ok = br.js('jupyterapp.commands.execute("notebook:run-all-cells")', wait=True)  # Run > Run All Cells
        br.until(f'{kernel}.status === "idle"', 60, 'the kernel back to idle')
        cells = br.js(f'{panel}.content.widgets.map(c => ({{type: c.model.type, n: c.model.executionCount ?? null, '
                      'outputs: c.model.type === "code" ? c.model.outputs.toJSON() : []}))')
        code = [c for c in cells if c['type'] == 'code']
        assert len(code) == sum(c['cell_type'] == 'code' for c in json.loads(original)['cells'])
        errors = [o for c in code for o in c['outputs'] if o['output_type'] == 'error']
        assert not errors, '\n'.join(f"{o['ename']}: {o['evalue']}" for o in errors)
        counts = [c['n'] for c in code]
        assert None not in counts and counts == sorted(counts) and len(set(counts)) == len(code), counts  # all ran, in order
        assert ok is True
        tables = [i for i, c in enumerate(cells) if shows_table(c['outputs'])]
        assert tables, 'no cell shows a table or a figure'
        # ... and the page shows it: the first such cell scrolled to the top, its output inside the window
        br.until(f"""(async () => {{ const nb = {panel}.content, cell = nb.widgets[{tables[0]}];
            nb.activeCellIndex = {tables[0]}; await nb.scrollToItem({tables[0]}, 'start');
            await new Promise(r => setTimeout(r, 500));
            return [...cell.node.querySelectorAll('.jp-OutputArea-output')].some(out => {{ const r = out.getBoundingClientRect();
                return r.height > 20 && r.top >= 0 && r.top < innerHeight
                       && (out.querySelector('table, img, svg') !== null || /^-+(  -+)+$/m.test(out.textContent)); }}); }})()""",
                 30, 'the table in the outputs, on the page', wait=True)
        assert not br.js('document.body.innerText.includes("Jupyter news")')  # no news consent toast
        time.sleep(1)
        png = __import__('base64').b64decode(br.call('Page.captureScreenshot', format='png')['data'])
        assert png_size(png) == (1400, 1000) and len(png) > 30_000  # a page, not a blank one
        shot = Path(os.environ.get('CHATMIMIC_LAB_SCREENSHOT') or tmp_path/'lab.png')
        shot.write_bytes(png)

        # Nothing left the machine: the page asked only the server, never for news or updates ...
        urls = [e['params']['request']['url'] for e in br.events if e.get('method') == 'Network.requestWillBeSent']
        urls += [e['params']['url'] for e in br.events if e.get('method') == 'Network.webSocketCreated']
        local = (base, base.replace('http:', 'ws:'), 'data:', 'blob:', 'about:')
        assert len(urls) > 20 and not [u for u in urls if not u.startswith(local)], [u for u in urls if not u.startswith(local)]
        assert not [u for u in urls if '/lab/api/news' in u or '/lab/api/update' in u]
        # ... and neither the server nor the kernel opened a connection or looked up a name elsewhere.
        assert not net_log.exists(), net_log.read_text()
        procs = Path(f'{net_log}.procs').read_text()
        assert 'jupyter-lab' in procs and 'ipykernel_launcher' in procs, procs  # both ran with the hook
        assert (work/'nbs'/NOTEBOOK).read_bytes() == original  # nothing saved the notebook

        # A checkpoint (what File > Save makes) goes to LAB_CHECKPOINTS, a private folder, never into the notebooks' folder.
        req = urllib.request.Request(f'{base}api/contents/{NOTEBOOK}/checkpoints?token={token}', method='POST')
        assert urllib.request.urlopen(req, timeout=30).status == 201
        assert [p.name for p in (tmp_path/'checkpoints').iterdir()] == [NOTEBOOK.replace('.ipynb', '-checkpoint.ipynb')]
        assert (tmp_path/'checkpoints').stat().st_mode & 0o777 == 0o700
        assert [p.name for p in (work/'nbs').iterdir()] == [NOTEBOOK]
    finally:
        if br: br.close()
        try: os.killpg(lab.pid, signal.SIGTERM)
        except ProcessLookupError: pass
        try: lab.wait(30)
        except subprocess.TimeoutExpired: os.killpg(lab.pid, signal.SIGKILL); lab.wait(10)
