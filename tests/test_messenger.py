"`chatmimic parse` on Messenger / Instagram threads: bad ones end in one sentence, a thread is read whole and once."
import json, stat
from pathlib import Path
from conftest import run_chatmimic, assert_user_error
from chatmimic.parse import ParseOptions, parse_inputs, read_jsonl

T = 1558215000000  # ms
N, P = 'Niccolò Ferri', 'Paolo Neri'

def moji(o):
    "`o` as Facebook writes it: UTF-8 bytes as Latin-1 code points."
    return json.loads(json.dumps(o, ensure_ascii=False).encode('utf-8').decode('latin-1'))

def thread(folder, slug='lisbona_123', n=6, split=3):
    "Write a thread of `n` messages (oldest first: 0..n-1) as message_1.json (newest) and message_2.json."
    msgs = [{'sender_name': (N, P)[i % 2], 'timestamp_ms': T + i * 1000, 'content': f'messaggio {i} però', 'type': 'Generic',
             'is_unsent': False} for i in range(n)]
    head = {'participants': [{'name': N}, {'name': P}], 'title': 'Niccolò Ferri', 'thread_type': 'Regular',
            'thread_path': f'inbox/{slug}', 'is_still_participant': True}
    d = folder/slug
    d.mkdir(parents=True)
    (d/'message_1.json').write_text(json.dumps(moji(dict(head, messages=msgs[split:][::-1]))))
    (d/'message_2.json').write_text(json.dumps(moji(dict(head, messages=msgs[:split][::-1]))))
    return d

def parse(p, out, *me): return run_chatmimic('parse', p, *(('--me', me[0]) if me else ()), '-o', out)

def test_truncated(tmp_path):
    d, out = thread(tmp_path), tmp_path/'out.jsonl'
    p = d/'message_1.json'
    p.write_text(p.read_text()[:-30])
    assert 'truncated' in assert_user_error(parse(p, out, P), p, out)

def test_truncated_sibling(tmp_path):
    d, out = thread(tmp_path), tmp_path/'out.jsonl'
    (d/'message_2.json').write_text((d/'message_2.json').read_text()[:-30])
    assert 'truncated' in assert_user_error(parse(d/'message_1.json', out, P), d/'message_2.json', out)

def test_json_that_is_no_export(tmp_path):
    p, out = tmp_path/'message_1.json', tmp_path/'out.jsonl'
    p.write_text(json.dumps({'messages': [{'text': 'x'}]}))
    assert 'not a known chat export' in assert_user_error(parse(p, out, P), p, out)
    p.write_text(json.dumps({'participants': [{'name': P}]}))
    r = run_chatmimic('parse', p, '--format', 'messenger', '--me', P, '-o', out)
    assert 'no "messages" list' in assert_user_error(r, p, out)

def test_missing_timestamp(tmp_path):
    p, out = tmp_path/'message_1.json', tmp_path/'out.jsonl'
    p.write_text(json.dumps({'participants': [{'name': P}], 'messages': [{'sender_name': P, 'content': 'x'}]}))
    assert 'timestamp_ms' in assert_user_error(parse(p, out, P), p, out)

def test_without_me(tmp_path):
    d, out = thread(tmp_path), tmp_path/'out.jsonl'
    assert 'the owner is not named' in assert_user_error(parse(d/'message_1.json', out), d/'message_1.json', out)

def test_me_not_found(tmp_path):
    d, out = thread(tmp_path), tmp_path/'out.jsonl'
    line = assert_user_error(parse(d/'message_1.json', out, 'Paolo'), d/'message_1.json', out)
    assert 'not among the participants' in line and 'Niccol' not in line  # other people's names are never printed

def test_cli_reads_the_thread(tmp_path):
    d, out = thread(tmp_path), tmp_path/'out.jsonl'
    r = parse(d/'message_2.json', out, P)
    assert r.returncode == 0, r.stderr
    assert 'messaggio' not in r.stdout + r.stderr  # counts only, never message text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    msgs = read_jsonl(out)
    assert [m.text for m in msgs] == [f'messaggio {i} però' for i in range(6)]  # both files, oldest first, repaired
    assert [m.from_me for m in msgs] == [False, True] * 3 and msgs[0].sender == N

def test_files_and_folders_read_once(tmp_path):
    inbox = tmp_path/'messages'/'inbox'
    a = thread(inbox, 'lisbona_123', n=6); thread(inbox, 'calcetto_456', n=4, split=1)
    msgs = parse_inputs([a/'message_1.json', a/'message_2.json', inbox], ParseOptions(me=P))
    assert len(msgs) == 10 and [m.id for m in msgs] == list(range(1, 11))
    assert [m.chat_id for m in msgs] == ['inbox/calcetto_456'] * 4 + ['inbox/lisbona_123'] * 6  # same start: by id
    assert [m.timestamp for m in msgs[4:6]] == ['2019-05-18T21:30:00Z', '2019-05-18T21:30:01Z']

def test_ties_keep_the_true_order(tmp_path):
    d = tmp_path/'t'
    d.mkdir()
    same = [{'sender_name': who, 'timestamp_ms': T, 'content': c} for who, c in [(N, 'prima'), (P, 'seconda'), (N, 'terza')]]
    (d/'message_1.json').write_text(json.dumps({'participants': [{'name': N}, {'name': P}], 'messages': same[2:][::-1]}))
    (d/'message_2.json').write_text(json.dumps({'participants': [{'name': N}, {'name': P}], 'messages': same[:2][::-1]}))
    assert [m.text for m in parse_inputs([d/'message_1.json'], ParseOptions(me=P))] == ['prima', 'seconda', 'terza']

# ---- issue 14: reactions, values checked at the reader --------------------------------------------------------------

def one_file(tmp_path, msgs) -> 'Path':
    "A thread of one message_1.json holding `msgs` (oldest first), as Facebook writes it."
    d = tmp_path/'inbox'/'marco_1'
    d.mkdir(parents=True)
    (d/'message_1.json').write_text(json.dumps(moji({'participants': [{'name': N}, {'name': P}], 'title': N, 'messages': msgs[::-1]})))
    return d/'message_1.json'

def test_reactions_are_system_notices(tmp_path):
    "Instagram writes 'Reacted ❤ to your message ' with a space after it: a notice, not text."
    p, out = one_file(tmp_path, [{'sender_name': N, 'timestamp_ms': T, 'content': 'Reacted ❤ to your message '},
                                 {'sender_name': P, 'timestamp_ms': T + 1, 'content': 'Reacted 😂 to your message'},
                                 {'sender_name': N, 'timestamp_ms': T + 2, 'content': 'Ti è piaciuto?'}]), tmp_path/'out.jsonl'
    assert parse(p, out, P).returncode == 0
    assert [m.kind for m in read_jsonl(out)] == ['system', 'system', 'text']

def test_values_of_the_wrong_type_are_skipped(tmp_path):
    ok = {'sender_name': N, 'timestamp_ms': T, 'content': 'ciao'}
    bad = [dict(ok, sender_name=[N]), dict(ok, content=7), dict(ok, timestamp_ms=10**16), dict(ok, timestamp_ms=None), 'x']
    p, out = one_file(tmp_path, [ok, dict(ok, sender_name=P, content='ciao a te')] + bad), tmp_path/'out.jsonl'
    r = parse(p, out, P)
    assert r.returncode == 0, r.stderr
    assert [(m.sender, m.text, m.timestamp) for m in read_jsonl(out)] == [(N, 'ciao', '2019-05-18T21:30:00Z'), (P, 'ciao a te', '2019-05-18T21:30:00Z')]
    p.write_text(json.dumps({'participants': [{'name': P}], 'messages': bad}))
    line = assert_user_error(parse(p, out.with_name('none.jsonl'), P), p, out.with_name('none.jsonl'))
    assert 'none of its 5 messages can be used' in line

def test_deeply_nested_json(tmp_path):
    "JSON nested as deep as Python's reader allows (900 lists) in a message: read without a RecursionError."
    deep = json.loads('[' * 900 + '"Niccol\\u00c3\\u00b2"' + ']' * 900)
    p, out = one_file(tmp_path, [{'sender_name': N, 'timestamp_ms': T, 'content': 'ciao', 'reactions': deep},
                                 {'sender_name': P, 'timestamp_ms': T + 1, 'content': 'ciao a te'}]), tmp_path/'out.jsonl'
    r = parse(p, out, P)
    assert r.returncode == 0, r.stderr[-500:]
    assert [m.text for m in read_jsonl(out)] == ['ciao', 'ciao a te']
