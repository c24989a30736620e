"The memorisation audit on the synthetic export: a model trained with pseudonymize on gives none of the replaced values back, where the same model trained with it off does; canaries stand out in the model that saw them; and the audit of a real compare folder."
import json
import numpy as np
import pytest
from conftest import run_chatmimic

@pytest.fixture(scope='module')
def toys(tmp_path_factory):
    "Two tiny runs of the same export, phone number and e-mail repeated in the owner's replies, canaries planted: pseudonymize off and on."
    from chatmimic.audit import toy_audit_run
    root = tmp_path_factory.mktemp('audit')
    return {p: toy_audit_run(root/p, p, n_messages=400, steps=80, pii_repeats=24, canaries=2, canary_repeats=8) for p in ('off', 'contacts')}

def loaded(run):
    from chatmimic.generate import run_info, dataset_path
    from chatmimic.train import load_prepared
    p = dataset_path(run, run_info(run))
    dsd, stats, tok = load_prepared(p)
    return p, dsd, stats, tok

def test_pseudonymized_model_gives_no_value_back(toys):
    from chatmimic.audit import TOY_PII, messages_of, pii_targets, extraction_hits
    from chatmimic.generate import load_run
    values = {v for _, _, v in TOY_PII}
    hits = {}
    for p, run in toys.items():
        path, dsd, stats, tok = loaded(run)
        assert stats['config']['pseudonymize'] == p
        targets = pii_targets(dsd['train'], tok, stats, messages_of(stats, path))
        assert {t['value'] for t in targets} == values  # found in the original messages either way
        text = '\n'.join(tok.decode(r['input_ids']) for s in dsd.values() for r in s)
        assert all((v in text) == (p == 'off') for v in values)  # what the model was shown, read independently
        model = load_run(run, 'model')[0]
        hits[p] = extraction_hits(model, tok, targets, stats['stop_token_id'], n_samples=8, seed=0, budget=stats['config']['block_size'])
    assert sum(hits['off']) > 0, hits   # the audit sees memorisation where there is some
    assert sum(hits['contacts']) == 0, hits

def test_canaries_stand_out_in_the_model_that_saw_them(toys):
    from chatmimic.audit import canary_targets, canary_exposures
    from chatmimic.generate import load_run
    path, dsd, stats, tok = loaded(toys['contacts'])
    cans = canary_targets(dsd, tok, stats)
    assert len(stats['canaries']) == 2 and len(cans) == 2
    assert all(c['secret'] not in tok.decode(c['ids_before']) for c in cans)  # the context stops before the secret
    exp = {w: canary_exposures(load_run(toys['contacts'], w)[0], tok, cans, n_candidates=63, seed=0, budget=stats['config']['block_size']) for w in ('model', 'base')}
    assert min(exp['model']) > 4 and np.mean(exp['model']) > np.mean(exp['base']) + 2, exp  # at most log2(64) = 6 bits

def test_audit_of_a_compare_folder(toys, tmp_path):
    from chatmimic.audit import audit_run
    cmp = tmp_path/'compare'
    r = run_chatmimic('compare', toys['off'], '-o', cmp, '--n-examples', '6', '--n-generate', '4', '--max-new-tokens', '12', '--n-boot', '100')
    assert r.returncode == 0, r.stderr
    m = json.loads((cmp/'metrics.json').read_text())  # compare ran the audit itself (its defaults: 10 samples, 100 candidates)
    assert m['authorship']['auc']['lo'] > 0.6 and m['extraction']['values'] == 2 and m['canaries'] == dict(m['canaries'], planted=2, candidates=100)
    assert m['blind']['questions'] == 4 and (cmp/'blind.html').stat().st_mode & 0o777 == 0o600 and 'owner-likeness' in r.stdout
    assert any(e['extraction']['extracted'] > 0 for e in m['models'].values())  # pseudonymize off: the model gives values back
    (cmp/'blind.json').unlink()
    page = tmp_path/'from-generations.html'
    r = run_chatmimic('blind', cmp, '-o', page, '-n', '3')  # a compare folder without blind.json: made from generations.jsonl
    assert r.returncode == 0 and page.exists(), r.stderr
    a = audit_run(out=cmp, seed=0, n_boot=200, blind_questions=4, n_samples=4, n_candidates=31, log=lambda *x: None)
    m = json.loads((cmp/'metrics.json').read_text())
    assert set(m['authorship']['auc']) >= {'value', 'lo', 'hi'} and m['authorship']['auc']['lo'] > 0.6
    for e in [*m['models'].values(), m['real_style']]: assert set(e['owner_likeness']) >= {'value', 'lo', 'hi'}
    assert m['extraction']['values'] == 2 and m['canaries']['planted'] == 2
    for e in m['models'].values(): assert 'share' in e['extraction'] and 'mean' in e['exposure']
    for f in ('blind.html', 'blind.json', 'metrics.json'): assert (cmp/f).stat().st_mode & 0o777 == 0o600, f
    assert (cmp/'authorship.png').exists() and a['files']['blind']['questions'] == 4
