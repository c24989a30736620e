"Every shipped config is a valid run description: its keys are parameters of the notebooks they feed, of the right type."
from pathlib import Path
import pytest
from chatmimic.core import STAGES, STAGE_NOTEBOOKS, read_config
from chatmimic.pipeline import RUN_KEYS, notebook_params, as_number, read_sweep, sweep_points, point_config, resolve

ROOT = Path(__file__).resolve().parents[1]
CONFIGS, NBS = ROOT/'configs', ROOT/'nbs'
DATA_FILES = {'devices.yaml'}  # read as data by 05_cost_analysis (its `devices` parameter), not a run configuration
FILES = sorted(p for p in CONFIGS.glob('*.yaml') if p.name not in DATA_FILES)
RUNS = [p for p in FILES if 'base' not in read_config(p)]
SWEEPS = [p for p in FILES if 'base' in read_config(p)]
DECLARED = {s: notebook_params(NBS/f'{STAGE_NOTEBOOKS[s]}.ipynb') for s in STAGES if (NBS/f'{STAGE_NOTEBOOKS[s]}.ipynb').exists()}

def fits(value, default) -> bool:
    "Whether a config value has the type of the notebook's default (an int is fine where a float is expected)."
    value = as_number(value)
    if default is None or isinstance(default, str) and not isinstance(value, str) and default == '': return True  # '' = unset
    if isinstance(default, bool): return isinstance(value, bool)
    if isinstance(default, float): return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int): return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))

def check(cfg:dict, where) -> list:
    "Assert every key of `cfg` is a parameter of a notebook it feeds; returns the keys no present notebook could check."
    unchecked = []
    for k, v in cfg.items():
        if k in RUN_KEYS: continue
        if k in STAGES:
            if k not in DECLARED: unchecked += [f'{k}.{x}' for x in v]; continue
            for x, y in v.items():
                assert x in DECLARED[k], f'{where}: {k}.{x} is not a parameter of {STAGE_NOTEBOOKS[k]}.ipynb'
                assert fits(y, DECLARED[k][x]), f'{where}: {k}.{x} = {y!r} does not have the type of its default {DECLARED[k][x]!r}'
        else:
            feeds = [s for s in DECLARED if k in DECLARED[s]]
            if not feeds and len(DECLARED) < len(STAGES): unchecked.append(k); continue
            assert feeds, f'{where}: {k} is not a parameter of any stage notebook'
            for s in feeds: assert fits(v, DECLARED[s][k]), f'{where}: {k} = {v!r} does not have the type of {s}\'s default {DECLARED[s][k]!r}'
    return unchecked

def test_there_are_configs():
    assert {'demo.yaml', 'paper.yaml'} <= {p.name for p in RUNS} and SWEEPS

@pytest.mark.parametrize('path', FILES, ids=lambda p: p.name)
def test_opens_with_what_it_needs(path):
    head = ''.join(l for l in path.read_text().splitlines(True)[:12] if l.startswith('#'))
    for word in ('Needs:', 'Run:', 'Time:'): assert word in head, f'{path.name}: the opening comment says no {word}'

@pytest.mark.parametrize('path', RUNS, ids=lambda p: p.name)
def test_run_config_keys_are_parameters(path, tmp_path):
    cfg = read_config(path)
    unchecked = check(cfg, path.name)
    resolve(cfg, tmp_path/'run', NBS, path)  # the runner accepts it too
    assert not unchecked, f"stage notebooks missing, not checked: {', '.join(unchecked)}"

@pytest.mark.parametrize('path', SWEEPS, ids=lambda p: p.name)
def test_sweep_points_are_parameters(path, tmp_path):
    s = read_sweep(path)
    assert s['base'].exists(), f'{path.name}: base {s["base"]} does not exist'
    unchecked = []
    for pt in sweep_points(s):
        cfg = point_config(s, pt)
        unchecked += check(cfg, f'{path.name} {pt}')
        resolve(cfg, tmp_path/'run', NBS, path)
    assert not unchecked, f"stage notebooks missing, not checked: {', '.join(sorted(set(unchecked)))}"

def test_a_wrong_key_is_caught():
    with pytest.raises(AssertionError, match='is not a parameter'): check({'parse': {'n_mesages': 3}}, 'x.yaml')
    with pytest.raises(AssertionError, match='does not have the type'): check({'prepare': {'block_size': '256'}}, 'x.yaml')

def test_papermill_reads_our_parameters():
    "papermill's own reader (`papermill --help-notebook`) sees every parameter of the notebooks this workstream owns."
    import papermill as pm
    for nb in ('00_parse', '01_prepare', '06_pipeline'):
        assert set(pm.inspect_notebook(str(NBS/f'{nb}.ipynb'))) == set(notebook_params(NBS/f'{nb}.ipynb')), nb
