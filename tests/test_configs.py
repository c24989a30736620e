"Every shipped config is a valid run description, the paper config is the study's Table 3, and every entry point resolves a config the same way."
from pathlib import Path
import pytest, yaml
from conftest import run_chatmimic
from chatmimic.core import STAGES, TRAINERS, read_config, config_class, build_config, NOT_IN_STUDY
from chatmimic.pipeline import notebook_params, read_sweep, sweep_points, point_config, resolve, read_run_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS, NBS = ROOT/'configs', ROOT/'nbs'
DATA_FILES = {'devices.yaml'}  # read as data by the cost stage (its `devices` parameter), not a run configuration
FILES = sorted(p for p in CONFIGS.glob('*.yaml') if p.name not in DATA_FILES)
RUNS = [p for p in FILES if 'base' not in read_config(p)]
SWEEPS = [p for p in FILES if 'base' in read_config(p)]

# The study's Table 3 (and §5.1), copied by hand from the paper: what `configs/paper.yaml` must resolve to.
TABLE3 = {
    'train_full': dict(model='GroNLP/gpt2-small-italian', learning_rate=1e-5, weight_decay=0.01, lr_scheduler='linear',
                       micro_batch=8, grad_accum=8, epochs=1.0, max_steps=-1, max_grad_norm=1.0, dropout=0.1),
    'train_qlora': dict(model='google/gemma-2b', learning_rate=1e-4, weight_decay=0.01, lr_scheduler='linear', epochs=1.0,
                        max_steps=-1, max_grad_norm=1.0, lora_rank=32, lora_alpha=16.0, lora_dropout=0.0, load_in_4bit=True,
                        lora_targets=['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']),
    'prepare': dict(block_size=1024, template='paper', split='random', media='example', min_date='2021-01-01',
                    tokenizer_full='GroNLP/gpt2-small-italian', tokenizer_qlora='google/gemma-2b',
                    max_examples_full=87000, max_examples_qlora=112000),
}

def test_there_are_configs():
    assert {'demo.yaml', 'paper.yaml'} <= {p.name for p in RUNS} and SWEEPS

@pytest.mark.parametrize('path', FILES, ids=lambda p: p.name)
def test_opens_with_what_it_needs(path):
    head = ''.join(l for l in path.read_text().splitlines(True)[:12] if l.startswith('#'))
    for word in ('Needs:', 'Run:', 'Time:'): assert word in head, f'{path.name}: the opening comment says no {word}'

@pytest.mark.parametrize('path', RUNS, ids=lambda p: p.name)
def test_run_config_resolves(path, tmp_path):
    cfg, where = read_run_config(path)
    configs = resolve(cfg, tmp_path/'run', where)
    assert list(configs) == [s for s in STAGES if s in (cfg.get('stages') or STAGES)]

@pytest.mark.parametrize('path', SWEEPS, ids=lambda p: p.name)
def test_sweep_points_resolve(path, tmp_path):
    s = read_sweep(path)
    assert s['base'].exists(), f'{path.name}: base {s["base"]} does not exist'
    for pt in sweep_points(s): resolve(point_config(s, pt), tmp_path/'run', path)

@pytest.mark.parametrize('stage', list(STAGES))
def test_notebook_parameters_are_the_config(stage):
    "The notebook's parameters cell declares exactly its config's fields, and its values are a valid config."
    nb = NBS/f'{STAGES[stage].notebook}.ipynb'
    declared, fields = notebook_params(nb), config_class(stage).params()
    assert sorted(declared) == sorted(fields), f'{nb.name}: only in the notebook {sorted(set(declared) - set(fields))}, only in the config {sorted(set(fields) - set(declared))}'
    config_class(stage).from_params(declared)  # the notebook's defaults are a valid config

@pytest.mark.parametrize('stage', list(STAGES))
def test_every_field_says_what_it_is(stage):
    for name, f in config_class(stage).params().items():
        assert f.metadata.get('help'), f'{stage}.{name} has no help'

def test_paper_config_is_table3(tmp_path):
    cfg, where = read_run_config(CONFIGS/'paper.yaml')
    configs = resolve(cfg, tmp_path/'run', where)
    for s, want in TABLE3.items():
        got = configs[s].to_dict()
        assert {k: got[k] for k in want} == want, s
    for s in TRAINERS:
        c = configs[s]
        assert c.micro_batch * c.grad_accum == 64 and c.eval_every >= 1 and c.val_examples == 0, s  # effective batch 64; Figure 4 gets a curve
    assert configs['compare'].n_examples == 0  # the whole test split

def test_library_defaults_are_the_study():
    "With no config at all, the trainers resolve to Table 3: the defaults are the study's, the demo is the override."
    for s in TRAINERS:
        got = config_class(s)().to_dict()
        assert {k: got[k] for k in TABLE3[s]} == TABLE3[s], s
        for name, f in config_class(s).params().items():
            st = f.metadata.get('study', NOT_IN_STUDY)
            if st is not NOT_IN_STUDY and name in TABLE3[s]: assert st == TABLE3[s][name], (s, name)

def test_plan_shows_table3_with_no_demo_value(tmp_path):
    r = run_chatmimic('run', CONFIGS/'paper.yaml', '--plan', '--runs-dir', tmp_path)
    assert r.returncode == 0, r.stderr
    plan = yaml.safe_load(r.stdout)
    assert list(plan) == list(STAGES) and not list(tmp_path.iterdir())  # nothing run, nothing written
    for s, want in TABLE3.items(): assert {k: plan[s][k] for k in want} == want, s
    for s in TRAINERS: assert plan[s]['max_steps'] == -1 and plan[s]['model'] not in ('gpt2-demo', 'gemma3-270m')
    assert plan['prepare']['tokenizer_full'] != 'demo-bpe' and plan['prepare']['block_size'] == 1024
    for s, c in plan.items(): assert set(c) == set(config_class(s).params()), s  # every field of every stage
    assert '# peak learning rate' in r.stdout or 'learning rate' in r.stdout  # each line says what it is

@pytest.mark.parametrize('stage', TRAINERS)
def test_trainer_command_resolves_like_the_run(stage, tmp_path):
    "`chatmimic train-full --config configs/paper.yaml` and `chatmimic run configs/paper.yaml` mean the same run."
    cfg, where = read_run_config(CONFIGS/'paper.yaml')
    ran = resolve(cfg, tmp_path/'run', where)[stage].to_dict()
    cmd = build_config(stage, CONFIGS/'paper.yaml').to_dict()
    assert {k: v for k, v in cmd.items() if k not in ('dataset', 'out')} == {k: v for k, v in ran.items() if k not in ('dataset', 'out')}

def test_misspelt_override_is_refused_with_the_closest_name(tmp_path):
    r = run_chatmimic('train-qlora', '--config', CONFIGS/'paper.yaml', '--dataset', tmp_path, '-o', tmp_path/'o', 'lora_rnak=16', '--dry-run')
    assert r.returncode == 2 and 'did you mean lora_rank' in r.stderr and r.stderr.count('\n') == 1, r.stderr
    r = run_chatmimic('run', CONFIGS/'demo.yaml', 'train_full.lerning_rate=1e-3', '--plan')
    assert r.returncode == 2 and 'did you mean learning_rate' in r.stderr, r.stderr

def test_overrides_anywhere_and_yaml_numbers(tmp_path):
    "The README's `chatmimic run configs/demo.yaml --name mine parse.inputs=[...]`: an override after a flag, 1e-4 a number."
    r = run_chatmimic('run', CONFIGS/'demo.yaml', '--name', 'mine', 'parse.inputs=[data/msgstore.db]', '--plan', 'train_full.learning_rate=1e-4', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    plan = yaml.safe_load(r.stdout)
    assert plan['train_full']['learning_rate'] == 1e-4
    assert plan['parse']['inputs'] == [str((tmp_path/'data'/'msgstore.db').resolve())]  # against where the command started, not nbs/

def test_relative_paths_in_a_config_are_the_callers(tmp_path):
    (tmp_path/'c.yaml').write_text('owner: A\nparse:\n  contacts: data/wa.db\n')
    r = run_chatmimic('run', tmp_path/'c.yaml', '--plan', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)['parse']['contacts'] == str(tmp_path/'data'/'wa.db')

def test_a_wrong_type_is_one_sentence(tmp_path):
    r = run_chatmimic('run', CONFIGS/'demo.yaml', 'train_full.micro_batch=1.5', '--plan')
    assert r.returncode == 2 and 'micro_batch 1.5 must be a whole number' in r.stderr and r.stderr.count('\n') == 1, r.stderr
