"Every format the synthetic generator writes parses back to exactly its ground truth (issue 2's acceptance test)."
import json
from collections import Counter
import pytest
from chatmimic.parse import ParseOptions, parse_inputs, read_jsonl, FIELDS
from chatmimic import synth, synth_exports
from conftest import run_chatmimic

OWNER = 'Paolo Neri'

@pytest.fixture(scope='module')
def truth(): return synth.make_truth(600, seed=3, owner=OWNER)

def rows(msgs):
    "The compared projection: every field; a system message's text is informational only."
    return [tuple(None if (f == 'text' and m.kind == 'system') else getattr(m, f) for f in FIELDS) for m in msgs]

def check(got, exp):
    "Field-by-field equality, with the per-(chat, kind, from_me) counts compared first for a readable failure."
    count = lambda ms: Counter((m.chat, m.kind, m.from_me) for m in ms)
    assert count(got) == count(exp)
    g, e = rows(got), rows(exp)
    bad = [(i, a, b) for i, (a, b) in enumerate(zip(g, e)) if a != b]
    assert not bad, f'{len(bad)} of {len(e)} differ; first: {bad[0]}'
    assert len(g) == len(e)

@pytest.mark.parametrize('contacts', [True, False])
@pytest.mark.parametrize('schema', ['modern', 'legacy'])
def test_msgstore(tmp_path, truth, schema, contacts):
    db = synth.write_msgstore(truth, tmp_path/'msgstore.db', schema)
    wa = synth.write_wa_db(truth, tmp_path/'wa.db') if contacts else None
    got = parse_inputs([db], ParseOptions(me=OWNER, contacts=str(wa) if wa else None))
    check(got, synth_exports.expected(truth, 'msgstore', me=OWNER, contacts=contacts, schema=schema))

@pytest.mark.parametrize('opts', [dict(platform='android', lang='en', clock=24, date_order='dmy'),
                                  dict(platform='android', lang='it', clock=24, date_order='dmy'),
                                  dict(platform='android', lang='en', clock=12, date_order='mdy'),
                                  dict(platform='ios', lang='en', clock=12, date_order='mdy')])
def test_whatsapp_txt(tmp_path, truth, opts):
    tz = 'America/New_York' if opts['date_order'] == 'mdy' else 'Europe/Rome'
    paths = [synth_exports.write_whatsapp_txt(truth, k, tmp_path, tz=tz, **opts) for k in range(len(truth.chats))]
    got = parse_inputs(paths, ParseOptions(me=OWNER, tz=tz))  # date order inferred from each file
    check(got, synth_exports.expected(truth, 'txt', me=OWNER, tz=tz, **opts))

def test_whatsapp_ios_zip(tmp_path, truth):
    paths = [synth_exports.write_whatsapp_zip(truth, k, tmp_path, tz='Europe/Rome') for k in range(len(truth.chats))]
    got = parse_inputs(paths, ParseOptions(me=OWNER, tz='Europe/Rome'))
    check(got, synth_exports.expected(truth, 'txt', me=OWNER, platform='ios', tz='Europe/Rome'))

def test_telegram_full_and_single(tmp_path, truth):
    p = synth_exports.write_telegram(truth, tmp_path/'result.json')
    check(parse_inputs([p], ParseOptions()), synth_exports.expected(truth, 'telegram'))
    one = synth_exports.write_telegram(truth, tmp_path/'one'/'result.json', single_chat=1)
    check(parse_inputs([one], ParseOptions(me=OWNER)), synth_exports.expected(truth, 'telegram', me=OWNER, single_chat=1))

def test_messenger_split_threads(tmp_path, truth):
    paths = [p for k in range(len(truth.chats)) for p in synth_exports.write_messenger(truth, k, tmp_path, per_file=40)]
    assert any(p.name == 'message_3.json' for p in paths)  # long threads really are split
    check(parse_inputs([tmp_path], ParseOptions(me=OWNER)), synth_exports.expected(truth, 'messenger', me=OWNER))

def test_paper_json_round_trip(tmp_path, truth):
    "The study's A.2 JSON written by --paper-json reads back to the same messages, minus what it cannot carry."
    from chatmimic.whatsapp_db import to_paper_json
    exp = synth_exports.expected(truth, 'msgstore', me=OWNER)
    p = tmp_path/'paper.json'; p.write_text(json.dumps(to_paper_json(exp)))
    got = parse_inputs([p], ParseOptions(me=OWNER))
    assert Counter((m.chat, m.kind, m.from_me) for m in got) == Counter((m.chat, m.kind, m.from_me) for m in exp)
    assert [(m.timestamp, m.sender, m.text) for m in got if m.kind == 'text'] == [(m.timestamp, m.sender, m.text) for m in exp if m.kind == 'text']

def test_cli_all_formats_end_to_end(tmp_path):
    "What a user runs: synth every format, parse each through the CLI; counts equal the ground truth."
    d = tmp_path/'export'
    r = run_chatmimic('synth', d, '--messages', 300, '--seed', 1, '--formats', 'all')
    assert r.returncode == 0, r.stderr
    truth = synth.make_truth(300, seed=1, owner=OWNER)
    cases = {'msgstore': ([d/'msgstore.db', '--contacts', d/'wa.db'], synth_exports.expected(truth, 'msgstore', me=OWNER)),
             'legacy': ([d/'legacy'/'msgstore.db'], synth_exports.expected(truth, 'legacy', me=OWNER, contacts=False)),
             'txt': ([d/'txt', '--tz', synth_exports.TXT_OPTIONS['tz']], synth_exports.expected(truth, 'txt', me=OWNER, **synth_exports.TXT_OPTIONS)),
             'telegram': ([d/'telegram'], synth_exports.expected(truth, 'telegram', me=OWNER)),
             'messenger': ([d/'messenger'], synth_exports.expected(truth, 'messenger', me=OWNER)),
             'ios': ([d/'iphone-backup'], synth_exports.expected(truth, 'ios', me=OWNER)),  # the backup folder
             'signal': ([d/'signal', '--tz', synth_exports.TXT_OPTIONS['tz']], synth_exports.expected(truth, 'signal', me=OWNER, tz=synth_exports.TXT_OPTIONS['tz']))}
    for name, (args, exp) in cases.items():
        out = tmp_path/f'{name}.jsonl'
        r = run_chatmimic('parse', *args, '--me', OWNER, '-o', out, '-q')
        assert r.returncode == 0, (name, r.stderr)
        check(read_jsonl(out), exp)

def test_synthetic_exports_skip_nothing(tmp_path, truth):
    "The checks on times, names and ids (issue 14) reject no record of a well-formed export of any format."
    paths = {'msgstore': [synth.write_msgstore(truth, tmp_path/'m'/'msgstore.db')],
             'legacy': [synth.write_msgstore(truth, tmp_path/'l'/'msgstore.db', 'legacy')],
             'txt': [synth_exports.write_whatsapp_txt(truth, k, tmp_path/'txt', tz='Europe/Rome') for k in range(len(truth.chats))],
             'zip': [synth_exports.write_whatsapp_zip(truth, k, tmp_path/'zip', tz='Europe/Rome') for k in range(len(truth.chats))],
             'telegram': [synth_exports.write_telegram(truth, tmp_path/'tg'/'result.json')],
             'messenger': [tmp_path/'fb']}
    for k in range(len(truth.chats)): synth_exports.write_messenger(truth, k, tmp_path/'fb', per_file=40)
    from chatmimic.whatsapp_db import to_paper_json
    (tmp_path/'paper.json').write_text(json.dumps(to_paper_json(synth_exports.expected(truth, 'msgstore', me=OWNER))))
    paths['whatsapp-json'] = [tmp_path/'paper.json']
    for fmt, ps in paths.items():
        opts = ParseOptions(me=OWNER, tz='Europe/Rome')
        assert parse_inputs(ps, opts), fmt
        assert not getattr(opts, 'skipped', None), (fmt, opts.skipped)
