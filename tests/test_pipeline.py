"`chatmimic run` and `chatmimic sweep` as a user runs them: the real stage notebooks, with tiny parameters."
import json, stat
from pathlib import Path
import pytest
from conftest import run_chatmimic
from chatmimic.core import STAGES, config_class

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT/'configs'/'demo.yaml'
# The demo config shrunk to the least that still runs every notebook's own checks. The QLoRA stage is left out here:
# its notebook alone takes minutes on a CPU (4-bit Gemma, its reload, stop-rate and merge checks); `make demo` runs
# all six and nbdev_test runs that notebook.
RUN = ['parse', 'prepare', 'train_full', 'compare', 'cost']
TINY = [f"stages=[{', '.join(RUN)}]", 'train_full.max_steps=2',
        'compare.n_examples=2', 'compare.n_generate=1', 'compare.n_show=1', 'compare.max_new_tokens=8', 'compare.n_boot=20']

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "The demo pipeline, tiny, run once for the tests below: (run folder, runs dir, CompletedProcess)."
    d = tmp_path_factory.mktemp('runs')
    r = run_chatmimic('run', DEMO, *TINY, '--runs-dir', d, '--name', 'tiny', timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return d/'tiny', d, r

def test_run_writes_every_artifact(run):
    out, _, r = run
    for name in ('params.yaml', 'metrics.json', 'report.md', 'run.json', 'messages.jsonl', 'prepared/full/stats.json', 'prepared/qlora/stats.json'):
        assert (out/name).exists(), name
    for s in RUN:
        nb = STAGES[s].notebook
        assert (out/f'{nb}.ipynb').exists() and (out/f'{nb}.html').exists() and (out/f'{nb}.done').exists(), s
        assert stat.S_IMODE((out/f'{nb}.ipynb').stat().st_mode) == 0o600  # it holds the messages
    assert stat.S_IMODE((out/'messages.jsonl').stat().st_mode) == 0o600 and stat.S_IMODE(out.stat().st_mode) == 0o700
    m = json.loads((out/'metrics.json').read_text())
    assert m['parse']['messages'] > 1000 and m['prepare']['full']['examples'] > 0 and m['prepare']['qlora']['examples'] > 0
    assert json.loads((out/'run.json').read_text())['complete']
    assert f'report:            {out/"report.md"}' in r.stdout
    assert m['train_full']['steps'] == 2 and (out/'train_full'/'loss.png').exists()
    assert (out/'compare'/'report.md').exists() and '## Comparison' in (out/'report.md').read_text()
    assert (out/'cost'/'cost.md').exists() and '## Cost' in (out/'report.md').read_text()
    assert (out/'compare'/'blind.html').exists() and 'blind --score' in (out/'report.md').read_text()  # the blind test, and how to score it

def test_stages_read_what_the_one_before_wrote(run):
    import yaml
    p = yaml.safe_load((run[0]/'params.yaml').read_text())['stages']
    assert p['prepare']['messages'] == p['parse']['out'] == str((run[0]/'messages.jsonl').resolve())
    assert p['parse']['inputs'] == [] and p['train_full']['dataset'] == str((run[0]/'prepared'/'full').resolve())
    for s in ('compare', 'cost'): assert p[s]['runs'] == [str((run[0]/'train_full').resolve())]  # the trainers of this run, not the demo runs
    for s in RUN: assert set(p[s]) == set(config_class(s).params()), s  # every parameter is handed over, not only those the config sets

def test_rerun_keeps_finished_stages(run):
    out, d, _ = run
    r = run_chatmimic('run', DEMO, *TINY, '--runs-dir', d, '--name', 'tiny', timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'running' not in r.stdout and r.stdout.count('kept') == len(RUN), r.stdout

def test_force_reruns(run):
    out, d, _ = run
    before = (out/'00_parse.done').read_text()
    r = run_chatmimic('run', DEMO, *TINY, 'stages=[parse]', '--force', '--runs-dir', d, '--name', 'tiny', timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '[1/6] parse: running 00_parse.ipynb' in r.stdout and 'kept' not in r.stdout
    assert (out/'00_parse.done').read_text() != before

def test_failing_stage_one_line_and_saved_notebook(tmp_path):
    (tmp_path/'msgstore.db').write_bytes(b'')  # an empty file: the parse notebook's reader refuses it
    r = run_chatmimic('run', DEMO, 'stages=[parse, prepare]', f'parse.inputs=[{tmp_path/"msgstore.db"}]', '--runs-dir', tmp_path, '--name', 'bad', timeout=300)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in r.stderr, r.stderr
    nb = tmp_path/'bad'/'00_parse.ipynb'
    assert lines[0].startswith('chatmimic: 00_parse failed in cell [') and f'see {nb}' in lines[0], lines[0]
    assert 'UserError' in lines[0] and 'empty' in lines[0]  # a UserError raised in the notebook keeps its sentence
    saved = json.loads(nb.read_text())
    assert any(o.get('output_type') == 'error' for c in saved['cells'] for o in c.get('outputs', []))  # saved up to the failing cell
    assert (tmp_path/'bad'/'00_parse.html').exists() and not (tmp_path/'bad'/'00_parse.done').exists()

def test_bad_value_fails_before_anything_runs(tmp_path):
    r = run_chatmimic('run', DEMO, 'prepare.template=alpaca', '--runs-dir', tmp_path, '--name', 'bad')
    assert r.returncode == 2 and r.stderr.strip().count('\n') == 0, r.stderr
    assert "demo.yaml: prepare: template 'alpaca' is not one of paper, chatml, model" in r.stderr, r.stderr
    assert not (tmp_path/'bad').exists()

def test_bad_config_key_is_a_user_error(tmp_path):
    r = run_chatmimic('run', DEMO, 'parse.n_mesages=3', '--runs-dir', tmp_path)
    assert r.returncode == 2 and r.stderr.strip().count('\n') == 0, r.stderr
    assert 'demo.yaml: parse.n_mesages is not a parameter of parse (did you mean n_messages?)' in r.stderr
    assert not (tmp_path/'demo').exists()

def test_two_point_sweep_finishes_and_resumes(tmp_path):
    sw = tmp_path/'sw.yaml'
    sw.write_text(f'# test sweep\nbase: {DEMO}\nname: two\njobs: 2\nset:\n  stages: [parse]\ngrid:\n  parse.n_messages: [300, 500]\nmetrics: [parse.messages]\n')
    r = run_chatmimic('sweep', sw, '--runs-dir', tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = (tmp_path/'two'/'summary.csv').read_text().splitlines()
    assert rows[0] == 'point,parse.n_messages,complete,parse.messages' and len(rows) == 3, rows
    n = {l.split(',')[0]: int(l.split(',')[-1]) for l in rows[1:]}
    assert set(n) == {'n_messages=300', 'n_messages=500'} and n['n_messages=300'] < n['n_messages=500']
    assert (tmp_path/'two'/'summary.png').stat().st_size > 1000 and (tmp_path/'two'/'summary.md').exists()
    (tmp_path/'two'/'n_messages=500'/'run.json').unlink()  # as if that point had been interrupted
    r = run_chatmimic('sweep', sw, '--runs-dir', tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert 'n_messages=300: finished earlier, kept' in r.stdout and 'n_messages=500: running' in r.stdout, r.stdout
    assert 'n_messages=500: done' in r.stdout

def _children(pid:int) -> list[int]:
    "The pids whose parent is `pid`."
    out = []
    for p in Path('/proc').glob('[0-9]*'):
        try:
            if int((p/'stat').read_text().rsplit(')', 1)[1].split()[1]) == pid: out.append(int(p.name))
        except (OSError, ValueError, IndexError): pass
    return out

def _alive(pid:int) -> bool:  # a process that exists and is not a zombie
    try: return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError: return False

def test_sigterm_stops_the_run_and_its_kernel(tmp_path):
    "SIGTERM to `chatmimic run` while a stage's notebook runs: exit 143 with one line, the stage's kernel gone, the stage not marked done."
    import signal, subprocess, time
    from conftest import CHATMIMIC
    pr = subprocess.Popen([str(CHATMIMIC), 'run', str(DEMO), 'stages=[parse, prepare]', '--runs-dir', str(tmp_path), '--name', 'term'],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kernels, t = [], time.monotonic()
    while time.monotonic() - t < 120 and pr.poll() is None:
        kernels = [k for k in _children(pr.pid) if b'ipykernel' in Path(f'/proc/{k}/cmdline').read_bytes()]
        if kernels and (tmp_path/'term'/'00_parse.done').exists(): break  # the prepare stage's kernel: its notebook runs for seconds
        time.sleep(0.2)
    assert kernels and all(map(_alive, kernels)), 'no stage kernel was seen running'
    pr.send_signal(signal.SIGTERM)
    out, err = pr.communicate(timeout=60)
    assert pr.returncode == 143 and err.strip().count('\n') == 0 and 'terminated (signal 15)' in err, (pr.returncode, err)
    t = time.monotonic()
    while any(map(_alive, kernels)) and time.monotonic() - t < 30: time.sleep(0.2)
    assert not any(map(_alive, kernels)), 'the stage kernel outlived the run by 30 s'
    assert not (tmp_path/'term'/'01_prepare.done').exists()
