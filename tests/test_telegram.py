"`chatmimic parse` on Telegram Desktop exports: bad ones end in one sentence, good ones are read whole."
import json, stat
from conftest import run_chatmimic, assert_user_error
from chatmimic.parse import ParseOptions, parse_inputs, read_jsonl

T = 1567324800  # 2019-09-01T08:00:00Z

def msg(id, t, who, text='', **extra):
    "A `message` as Telegram Desktop writes it; `who` is (from, from_id)."
    return {'id': id, 'type': 'message', 'date': '2019-09-01T10:00:00', 'date_unixtime': str(t),
            'from': who[0], 'from_id': who[1], **extra, 'text': text, 'text_entities': []}

PAOLO, GIULIA = ('Paolo Neri', 'user4400998877'), ('Giulia Bianchi', 'user5123456789')
CHAT = {'name': 'Giulia Bianchi', 'type': 'personal_chat', 'id': 5123456789, 'messages': [
    msg(1, T, GIULIA, 'Ciao! Sei arrivato?'),
    msg(2, T + 5, PAOLO, ['Sì: ', {'type': 'link', 'text': 'https://example.org'}], edited='2019-09-01T10:01:00'),
    msg(3, T + 9, PAOLO, 'La vista', photo='(File not included. Change data exporting settings to download.)',
        reply_to_message_id=1),
    {'id': 4, 'type': 'service', 'date': '2019-09-01T11:00:00', 'date_unixtime': str(T + 3600), 'actor': 'Paolo Neri',
     'actor_id': 'user4400998877', 'action': 'phone_call', 'duration_seconds': 95, 'text': '', 'text_entities': []},
    {'id': 5, 'type': 'unsupported'}]}
GROUP = {'name': 'Calcetto', 'type': 'private_group', 'id': 1234, 'messages': [
    msg(1, T - 500, (None, 'user99'), 'Chi porta il pallone?'), msg(2, T - 400, PAOLO, 'Io!', reply_to_message_id=1)]}
FULL = {'about': '…', 'personal_information': {'user_id': 4400998877, 'first_name': 'Paolo', 'last_name': 'Neri'},
        'chats': {'about': '…', 'list': [CHAT, GROUP]}, 'left_chats': {'about': '…', 'list': []}}

def write(p, obj):
    p.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding='utf-8'); return p

def parse(p, out, *me): return run_chatmimic('parse', p, *(('--me', me[0]) if me else ()), '-o', out)

def test_truncated(tmp_path):
    p, out = tmp_path/'result.json', tmp_path/'out.jsonl'
    p.write_text(json.dumps(FULL)[:-60])
    assert 'truncated' in assert_user_error(parse(p, out), p, out)

def test_json_that_is_no_export(tmp_path):
    p, out = write(tmp_path/'result.json', {'about': '…', 'personal_information': {'user_id': 1}}), tmp_path/'out.jsonl'
    # personal_information alone marks a Telegram export: the reader says what is missing
    assert 'no messages in any chat' in assert_user_error(parse(p, out), p, out)
    write(p, {'name': 'x', 'version': 3})
    r = run_chatmimic('parse', p, '--format', 'telegram', '-o', out)
    assert 'neither "chats" nor "messages"' in assert_user_error(r, p, out)

def test_no_messages_anywhere(tmp_path):
    empty = dict(FULL, chats={'list': [dict(CHAT, messages=[]), dict(GROUP, messages=[])]})
    p, out = write(tmp_path/'result.json', empty), tmp_path/'out.jsonl'
    assert 'no messages in any chat' in assert_user_error(parse(p, out), p, out)

def test_chat_without_messages(tmp_path):
    bad = dict(FULL, chats={'list': [CHAT, {'name': 'Calcetto', 'type': 'private_group', 'id': 1234}]})
    p, out = write(tmp_path/'result.json', bad), tmp_path/'out.jsonl'
    assert 'chat 1234 has no "messages"' in assert_user_error(parse(p, out), p, out)

def test_old_export_without_unixtime(tmp_path):
    old = dict(CHAT, messages=[{k: v for k, v in m.items() if k != 'date_unixtime'} for m in CHAT['messages']])
    p, out = write(tmp_path/'result.json', old), tmp_path/'out.jsonl'
    assert 'date_unixtime' in assert_user_error(parse(p, out, 'Paolo Neri'), p, out)

def test_single_chat_without_me(tmp_path):
    p, out = write(tmp_path/'result.json', CHAT), tmp_path/'out.jsonl'
    assert 'the owner is not named' in assert_user_error(parse(p, out), p, out)

def test_single_chat_me_not_found(tmp_path):
    p, out = write(tmp_path/'result.json', CHAT), tmp_path/'out.jsonl'
    line = assert_user_error(parse(p, out, 'Paolo'), p, out)
    assert 'not among the senders' in line and 'Giulia' not in line  # other people's names are never printed

def test_full_export_cli(tmp_path):
    p, out = write(tmp_path/'result.json', FULL), tmp_path/'out.jsonl'
    r = parse(p, out)
    assert r.returncode == 0, r.stderr
    assert 'Sei arrivato' not in r.stdout + r.stderr  # counts only, never message text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    msgs = read_jsonl(out)
    assert [m.kind for m in msgs] == ['text', 'text', 'text', 'text', 'media', 'system']
    assert [m.sender for m in msgs] == ['Deleted Account', 'Paolo Neri', 'Giulia Bianchi', 'Paolo Neri', 'Paolo Neri', None]
    assert msgs[3].text == 'Sì: https://example.org' and msgs[3].edited
    assert msgs[4].text == 'La vista' and msgs[4].reply_to == msgs[2].id

def test_export_folder(tmp_path):
    export = tmp_path/'Telegram Desktop'/'DataExport_2024-05-01'
    (export/'photos').mkdir(parents=True)
    write(export/'result.json', FULL)
    msgs = parse_inputs([tmp_path/'Telegram Desktop'])
    assert [m.id for m in msgs] == [1, 2, 3, 4, 5, 6]
    assert [m.chat for m in msgs] == ['Calcetto'] * 2 + ['Giulia Bianchi'] * 4  # chats by their first message
    assert msgs[1].reply_to == 1 and msgs[0].is_group and not msgs[2].is_group
    assert [m.timestamp for m in msgs[2:4]] == ['2019-09-01T08:00:00Z', '2019-09-01T08:00:05Z']  # UTC, not the local `date`
    single = parse_inputs([write(tmp_path/'one.json', CHAT)], ParseOptions(me='Paolo Neri'))
    assert [(m.sender, m.from_me, m.kind, m.text) for m in single] == [(m.sender, m.from_me, m.kind, m.text) for m in msgs[2:]]

# ---- values checked at the reader (issue 14) ----------------------------------------------------------------------

BAD = [msg(11, T + 11, GIULIA, 42), dict(msg(12, T + 12, GIULIA, 'x'), id=[12]), dict(msg(13, T + 13, GIULIA, 'x'), date_unixtime='NaN'),
       dict(msg(14, T + 14, GIULIA, 'x'), date_unixtime=float('nan')), msg(15, 10**11, GIULIA, 'x'), msg(16, 5, GIULIA, 'x'),
       msg(17, T + 17, (['Giulia'], 'user5123456789'), 'x'), msg(18, T + 18, GIULIA, ['a', 5])]

def test_values_of_the_wrong_type_are_skipped(tmp_path):
    "A text that is a number, an id that is a list, a NaN or far-off time, a sender that is a list: skipped, the rest read."
    p, out = write(tmp_path/'result.json', dict(FULL, chats={'list': [dict(CHAT, messages=CHAT['messages'] + BAD), GROUP]})), tmp_path/'out.jsonl'
    r = parse(p, out)
    assert r.returncode == 0, r.stderr
    msgs = read_jsonl(out)
    assert len(msgs) == 6 and all(type(m.text) in (str, type(None)) and type(m.sender) in (str, type(None)) for m in msgs)
    assert all('2019-08-31' <= m.timestamp[:10] <= '2019-09-01' for m in msgs)

def test_a_chat_whose_id_is_a_list(tmp_path):
    p, out = write(tmp_path/'result.json', dict(FULL, chats={'list': [dict(CHAT, id=[5123456789]), GROUP]})), tmp_path/'out.jsonl'
    r = parse(p, out)
    assert r.returncode == 0, r.stderr
    assert {m.chat for m in read_jsonl(out)} == {'Calcetto'}  # never '[5123456789]' as a chat

def test_nothing_usable_is_one_sentence(tmp_path):
    p, out = write(tmp_path/'result.json', dict(FULL, chats={'list': [dict(CHAT, messages=BAD)]})), tmp_path/'out.jsonl'
    line = assert_user_error(parse(p, out), p, out)
    assert 'none of its 8 messages can be used (4 with a time out of range, 2 with a text of the wrong type, 1 with' in line
