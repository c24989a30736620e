"""Signal through signal-export: a synthetic export parses back to exactly its ground truth, carries the same typed
history as the WhatsApp files of the same invented people, and bad input through the real command is one sentence,
exit status 2, nothing written. All data here is invented."""
from collections import Counter
import pytest
from chatmimic.parse import ParseOptions, parse_inputs
from chatmimic import synth, synth_exports
from chatmimic.synth_exports import write_signal, signal_folders
from conftest import run_chatmimic, assert_user_error
from test_formats import check, OWNER

TZ = 'America/New_York'  # the exporting computer's zone: its times are local, without offset

@pytest.fixture(scope='module')
def truth(): return synth.make_truth(600, seed=3, owner=OWNER)

def test_export_folder(truth, tmp_path):
    files = write_signal(truth, tmp_path/'signal', TZ)
    got = parse_inputs([tmp_path/'signal'], ParseOptions(me=OWNER, tz=TZ))
    check(got, synth_exports.expected(truth, 'signal', me=OWNER, tz=TZ))
    assert {m.chat: m.is_group for m in got} == dict(zip(signal_folders(truth), [c.is_group for c in truth.chats]))
    assert parse_inputs(files[:1], ParseOptions(me=OWNER, tz=TZ)) == [m for m in got if m.chat_id == files[0].parent.name]

def test_same_history_as_whatsapp(truth, tmp_path):
    "What people typed, when, and who: the same in the Signal export as in msgstore.db (an independent reader of the same history)."
    write_signal(truth, tmp_path/'signal', TZ)
    sig = parse_inputs([tmp_path/'signal'], ParseOptions(me=OWNER, tz=TZ))
    wa = synth_exports.expected(truth, 'msgstore', me=OWNER)
    typed = lambda ms: sorted((m.timestamp, m.from_me, m.kind, m.text) for m in ms if m.kind in ('text', 'media', 'deleted'))
    assert typed(sig) == typed(wa)
    per_kind = lambda ms: Counter((m.kind, m.from_me) for m in ms if m.kind != 'system')
    assert per_kind(sig) == per_kind(wa)
    calls = sum(e.action == 'call' for c in truth.chats for e in c.events)
    notices = sum(e.kind == 'system' and e.action not in ('e2e', 'reaction') for c in truth.chats for e in c.events)
    assert sum(m.kind == 'system' for m in sig) == notices and calls > 0  # Signal shows calls, WhatsApp's tables do not

def truncated(d):
    raw = d.read_text(); d.write_text(raw[:len(raw) - 30]); return 'truncated file'

def foreign_line(d):
    d.write_text(d.read_text() + '{"date": "2024-01-01T10:00:00", "who": "x"}\n'); return 'is not a signal-export message'

def not_json(d):
    d.write_text('{"date": "2024-01-01T10:00:00", "sender": "Me", "body": "x"}\nnot json at all\n{"a": 1}\n'); return 'line 2 is not JSON'

def bad_date(d):
    d.write_text('{"date": "yesterday", "sender": "Me", "body": "ciao  "}\n'); return 'line 1 has no valid date'

CASES = {f.__name__: f for f in (truncated, foreign_line, not_json, bad_date)}

@pytest.mark.parametrize('case', CASES)
def test_bad_input(case, truth, tmp_path):
    f = write_signal(truth, tmp_path/'signal', TZ)[0]
    says = CASES[case](f)
    out = tmp_path/'out'/'parsed.jsonl'
    r = run_chatmimic('parse', f, '--me', OWNER, '--tz', TZ, '-o', out, '-q')
    assert says in assert_user_error(r, f, out)
    assert not out.parent.exists() or not any(out.parent.iterdir())

def test_owner_required(truth, tmp_path):
    f = write_signal(truth, tmp_path/'signal', TZ)[0]
    r = run_chatmimic('parse', f, '-o', tmp_path/'x.jsonl', '-q')
    assert 'the owner is not named' in assert_user_error(r, f, tmp_path/'x.jsonl')
