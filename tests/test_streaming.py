"""`chatmimic parse` streams (issue 16): the file it writes chat by chat is the file the in-memory parser wrote, byte for
byte, on the synthetic export (both schemas, with and without wa.db); numbering as messages pass equals sorting them
all; the fast JSON lines equal json.dumps; neither parse's nor the msgstore reader's memory grows with the history;
the per-chat table is counted on the way."""
import gc, json, tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from chatmimic import synth, synth_exports
from chatmimic.parse import (KINDS, Message, ParseOptions, ChatSummary, chat_summary, iter_messages, json_lines, number_chats, read_inputs,
                             read_jsonl, sort_inputs, write_jsonl)
from chatmimic.whatsapp_db import read_msgstore
from conftest import run_chatmimic

OWNER = 'Paolo Neri'

def held_parse(paths, opts) -> list:
    "The parser as it was before it streamed: every message of every input held, chats sorted by their first message, renumbered."
    chats, src = {}, {}
    for i, m in read_inputs(paths, opts):
        chats.setdefault(m.chat_id, []).append(m); src[id(m)] = i
    msgs = []
    for c in sorted(chats, key=lambda c: (min(m.timestamp for m in chats[c]), c)):
        msgs += sorted(chats[c], key=lambda m: m.timestamp)
    new = {(src[id(m)], m.id): n for n, m in enumerate(msgs, 1)}
    for n, m in enumerate(msgs, 1): m.id, m.reply_to = n, None if m.reply_to is None else new.get((src[id(m)], m.reply_to))
    return msgs

def held_file(msgs, path:Path) -> bytes:
    "What the parser wrote before: one json.dumps of each record."
    path.write_text(''.join(json.dumps(vars(m), ensure_ascii=False) + '\n' for m in msgs), encoding='utf-8')
    return path.read_bytes()

@pytest.fixture(scope='module')
def exports(tmp_path_factory):
    d = tmp_path_factory.mktemp('exports')
    truth = synth.make_truth(4000, seed=11, owner=OWNER)
    return d, truth, synth.write_msgstore(truth, d/'modern.db'), synth.write_msgstore(truth, d/'legacy.db', 'legacy'), synth.write_wa_db(truth, d/'wa.db')

@pytest.mark.parametrize('schema', ['modern', 'legacy'])
@pytest.mark.parametrize('contacts', [True, False])
def test_streamed_file_is_the_held_parsers_file(exports, tmp_path, schema, contacts):
    d, truth, *_ = exports
    db, wa = d/f'{schema}.db', d/'wa.db'
    out = tmp_path/'messages.jsonl'
    r = run_chatmimic('parse', db, '--me', OWNER, '-o', out, '-q', *(['--contacts', wa] if contacts else []))
    assert r.returncode == 0, r.stderr
    opts = ParseOptions(me=OWNER, contacts=str(wa) if contacts else None)
    assert out.read_bytes() == held_file(held_parse([db], opts), tmp_path/'held.jsonl')
    expected = synth_exports.expected(truth, 'msgstore' if schema == 'modern' else 'legacy', me=OWNER, contacts=contacts)  # and the generator's ground truth, independently
    assert [vars(m) for m in read_jsonl(out)] == [vars(m) for m in expected]

def test_several_inputs_are_merged_as_before(exports, tmp_path):
    "Two inputs (the same history twice): held and sorted in memory, numbered per input, as before."
    d, *_ = exports
    opts = ParseOptions(me=OWNER, contacts=str(d/'wa.db'))
    got = list(iter_messages([d/'modern.db', d/'legacy.db'], opts))
    assert [vars(m) for m in got] == [vars(m) for m in held_parse([d/'modern.db', d/'legacy.db'], opts)]

def test_lid_chat_merged_and_streamed(exports, tmp_path):
    "A chat split over an @lid chat row and its phone jid's row (jid_map) reads as one chat, as the held parser read it."
    import shutil, sqlite3
    d, *_ = exports
    db = tmp_path/'lid.db'; shutil.copy(d/'modern.db', db)
    con = sqlite3.connect(db)
    chat, jid = con.execute("SELECT c._id, c.jid_row_id FROM chat c JOIN jid j ON j._id = c.jid_row_id WHERE j.raw_string LIKE '%@s.whatsapp.net' LIMIT 1").fetchone()
    lid = con.execute("INSERT INTO jid(user, server, raw_string) VALUES ('999', 'lid', '999@lid')").lastrowid
    new = con.execute('INSERT INTO chat(jid_row_id) VALUES (?)', (lid,)).lastrowid
    con.execute('CREATE TABLE jid_map (lid_row_id INTEGER PRIMARY KEY, jid_row_id INTEGER)')
    con.execute('INSERT INTO jid_map VALUES (?, ?)', (lid, jid))
    con.execute('UPDATE message SET chat_row_id = ? WHERE chat_row_id = ? AND _id % 3 = 0', (new, chat))  # every third message in the @lid chat
    con.commit(); con.close()
    opts = ParseOptions(me=OWNER, contacts=str(d/'wa.db'))
    got = list(iter_messages([db], opts))
    assert [vars(m) for m in got] == [vars(m) for m in held_parse([db], opts)]
    assert not any(m.chat_id == '999@lid' for m in got)

# ---- numbering as messages pass ------------------------------------------------------------------------------------

@st.composite
def ordered_chats(draw):
    "Messages chat by chat, each chat in time order, with replies to earlier, later, missing and other chats' messages."
    chats, key = [], 0
    for c in range(draw(st.integers(1, 5))):
        times = sorted(draw(st.lists(st.integers(0, 50), min_size=1, max_size=12)))
        keys = list(range(key, key + len(times))); key += len(times)
        chats.append([Message(f'c{c}', f'C{c}', False, k, f'2022-01-01T00:00:{t:02d}Z', 'Ann', False, 'text', 'x', False,
                              draw(st.one_of(st.none(), st.sampled_from(keys), st.integers(-3, 80))))  # this chat's, none, or any key
                      for t, k in zip(times, keys)])
    return [m for ms in sorted(chats, key=lambda ms: (ms[0].timestamp, ms[0].chat_id)) for m in ms]  # chats by their first message

@settings(max_examples=200, deadline=None, derandomize=True)
@given(ordered_chats())
def test_numbering_as_they_pass_equals_sorting_all(msgs):
    "number_chats on messages that come in order gives sort_inputs' numbers, replies within a chat resolved both ways."
    import copy
    a, b = list(number_chats(copy.deepcopy(msgs))), sort_inputs([(0, None, copy.deepcopy(msgs))])
    for m in b:  # the held parser also resolved a reply to another chat's message; a streamed reader's replies are within their chat
        if m.reply_to is not None and b[m.reply_to - 1].chat_id != m.chat_id: m.reply_to = None
    assert [vars(m) for m in a] == [vars(m) for m in b]

def test_json_lines_are_json_dumps():
    weird = ['', 'a"b\\c', '\n\t\x00\x1f', '\u2028\u2029', 'caffè ☕ 😀', '\ud7ff', 'x' * 10_000]
    msgs = [Message(cid, name, g, i, f'2022-04-02T09:58:{i % 60:02d}Z', snd, fm, k, t, ed, r)
            for i, (cid, name, g, snd, fm, k, t, ed, r) in enumerate(
                [(c, n, g, s, fm, k, t, ed, r) for c in ('g1', 'x"y') for n in weird[:3] for g in (True, False) for s in (None, 'Ann', weird[4])
                 for fm in (True, False) for k in KINDS for t in (None, weird[1], weird[6]) for ed in (False, True) for r in (None, 3)][:3000])]
    assert list(json_lines(msgs)) == [json.dumps(vars(m), ensure_ascii=False) for m in msgs]

# ---- memory -------------------------------------------------------------------------------------------------------

def fake_reader(n:int, per_chat:int=1000):
    "An ordered reader's output, made up as it is read: `n` messages, chat by chat, each replying to the one before."
    for i in range(n):
        c = i // per_chat
        yield Message(f'chat{c:05d}', f'Chat {c}', True, i, f'2022-01-{1 + c % 28:02d}T00:00:00Z', f'P{i % 7}', i % 3 == 0, 'text',
                      f'messaggio numero {i} ' * 5, False, i - 1 if i % per_chat else None)

def peak_python_memory(f) -> int:
    "The peak of Python's allocations while `f()` runs, in bytes."
    gc.collect(); tracemalloc.start()
    try: f(); return tracemalloc.get_traced_memory()[1]
    finally: tracemalloc.stop()

def test_parse_memory_does_not_grow_with_the_history(tmp_path):
    "Numbering, counting and writing 100,000 messages peaks at about what 10,000 take: nothing holds the history."
    def run(n):
        s = ChatSummary()
        return peak_python_memory(lambda: write_jsonl(s.count(number_chats(fake_reader(n))), tmp_path/f'{n}.jsonl'))
    small, large = run(10_000), run(100_000)
    assert large < small + (2 << 20), (small, large)  # 10x the messages, under 2 MiB more (held, they would take ~60 MiB)
    held = peak_python_memory(lambda: list(number_chats(fake_reader(50_000))))
    assert held > 2 * large, (held, large)  # the measure does see messages held

def test_summary_is_the_files_table(exports, tmp_path):
    d, *_ = exports
    out = tmp_path/'m.jsonl'
    s = ChatSummary()
    write_jsonl(s.count(iter_messages([d/'modern.db'], ParseOptions(me=OWNER, contacts=str(d/'wa.db')))), out)
    assert s.rows() == chat_summary(read_jsonl(out))

def test_msgstore_reader_streams(tmp_path):
    "Reading 75,000 messages of msgstore.db holds about what 25,000 do (a batch of rows): the reader passes its rows on as SQLite sorts them."
    def peak(n):
        db = synth.write_msgstore(synth.make_truth(n, seed=1, owner=OWNER), tmp_path/f'{n}.db')
        return peak_python_memory(lambda: [None for _ in read_msgstore(db, ParseOptions(me=OWNER))])
    assert getattr(read_msgstore, 'ordered', False)  # what lets parse stream it
    small, large = peak(25_000), peak(75_000)
    assert large < small + (3 << 20), (small, large)  # held, 50,000 more rows would take ~20 MB
