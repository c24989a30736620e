"""WhatsApp on an iPhone: a synthetic Finder/iTunes backup (plain and encrypted) and the bare ChatStorage.sqlite parse
back to exactly their ground truth, which is Android's msgstore.db history bar the edits; bad input through the real
command is one sentence, exit status 2, nothing written. All data here is invented."""
import os, stat, subprocess, sys
from collections import Counter
import pytest
from chatmimic.parse import ParseOptions, parse_inputs, read_jsonl
from chatmimic import synth, synth_exports
from chatmimic.synth_exports import write_ios_backup, write_chatstorage, write_contactsv2, ios_file_id, WA_IOS_DOMAIN
from chatmimic.whatsapp_ios import PASSWORD_ENV
from conftest import CHATMIMIC, run_chatmimic, assert_user_error
from test_formats import check, OWNER

PASSWORD = 'correct horse battery staple'
CHATSTORAGE = ios_file_id(WA_IOS_DOMAIN, 'ChatStorage.sqlite')

@pytest.fixture(scope='module')
def truth(): return synth.make_truth(600, seed=3, owner=OWNER)

@pytest.fixture(scope='module')
def backups(truth, tmp_path_factory):
    d = tmp_path_factory.mktemp('backups')
    return write_ios_backup(truth, d/'plain'/'00008110-0001'), write_ios_backup(truth, d/'encrypted'/'00008110-0001', password=PASSWORD)

def parse(path, *args, out, env):
    "`chatmimic parse PATH ARGS --me OWNER -o OUT -q` with the environment `env`, no terminal to ask a password on."
    return subprocess.run([str(CHATMIMIC), 'parse', str(path), *map(str, args), '--me', OWNER, '-o', str(out), '-q'], capture_output=True,
                          text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)

def same_history(ios, android):
    "The iPhone's messages are Android's: every field but `edited` (the iPhone database marks no edit)."
    assert [dict(m.__dict__, edited=False) for m in ios] == [dict(m.__dict__, edited=False) for m in android]

def test_backup_folder(truth, backups):
    got = parse_inputs([backups[0]], ParseOptions(me=OWNER))
    check(got, synth_exports.expected(truth, 'ios', me=OWNER))
    same_history(got, synth_exports.expected(truth, 'msgstore', me=OWNER))
    assert Counter(m.kind for m in got) == Counter(m.kind for m in synth_exports.expected(truth, 'msgstore', me=OWNER))
    assert parse_inputs([backups[0]/'Manifest.db'], ParseOptions(me=OWNER)) == got  # its index
    assert parse_inputs([backups[0].parent], ParseOptions(me=OWNER)) == got        # the folder of backups

@pytest.mark.parametrize('contacts', [True, False])
def test_chatstorage_alone(truth, tmp_path, contacts):
    db = write_chatstorage(truth, tmp_path/'ChatStorage.sqlite')
    if contacts: write_contactsv2(truth, tmp_path/'ContactsV2.sqlite')  # found beside it
    check(parse_inputs([db], ParseOptions(me=OWNER)), synth_exports.expected(truth, 'ios', me=OWNER, contacts=contacts))

def test_encrypted_backup_through_the_command(truth, backups, tmp_path):
    "The password from the environment; nothing decrypted is left in the temporary folder; the output is the plain backup's."
    scratch = tmp_path/'tmpdir'; scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch), **{PASSWORD_ENV: PASSWORD})
    out = tmp_path/'encrypted.jsonl'
    r = parse(backups[1], out=out, env=env)
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not any(scratch.iterdir())
    check(read_jsonl(out), synth_exports.expected(truth, 'ios', me=OWNER))

def test_password_flag(truth, backups, tmp_path):
    "--password opens the encrypted backup without the environment; it is in no file the run writes and never printed."
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    out = tmp_path/'flag.jsonl'
    r = parse(backups[1], '--password', PASSWORD, out=out, env=env)
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stdout + r.stderr and PASSWORD not in out.read_text()
    check(read_jsonl(out), synth_exports.expected(truth, 'ios', me=OWNER))
    r = parse(backups[1], '--password', 'hunter2', out=tmp_path/'wrong.jsonl', env=env)
    assert r.returncode == 2 and 'cannot be opened with this password' in r.stderr and 'hunter2' not in r.stderr
    assert not (tmp_path/'wrong.jsonl').exists()

def no_whatsapp(truth, tmp):
    return write_ios_backup(truth, tmp/'NoWhatsApp', whatsapp=False), 'is an iPhone backup without WhatsApp', {}

def wrong_password(truth, tmp):
    return write_ios_backup(truth, tmp/'Enc', password=PASSWORD), 'cannot be opened with this password', {PASSWORD_ENV: 'hunter2'}

def no_password(truth, tmp):
    return write_ios_backup(truth, tmp/'Enc', password=PASSWORD), 'no password was given', {}

def truncated_in_backup(truth, tmp):
    b = write_ios_backup(truth, tmp/'Cut')
    f = b/CHATSTORAGE[:2]/CHATSTORAGE; raw = f.read_bytes(); f.write_bytes(raw[:len(raw) // 2])
    return b, 'is a damaged WhatsApp database', {}

def truncated_encrypted(truth, tmp):
    b = write_ios_backup(truth, tmp/'CutEnc', password=PASSWORD)
    f = b/CHATSTORAGE[:2]/CHATSTORAGE; f.write_bytes(f.read_bytes()[:5000])
    return b, 'is a damaged encrypted backup', {PASSWORD_ENV: PASSWORD}

def truncated_chatstorage(truth, tmp):
    raw = write_chatstorage(truth, tmp/'full.sqlite').read_bytes()
    p = tmp/'ChatStorage.sqlite'; p.write_bytes(raw[:len(raw) // 2])
    return p, 'is a damaged', {}  # found when its format is detected, or halfway through the scan

def contacts_as_input(truth, tmp):
    return write_contactsv2(truth, tmp/'ContactsV2.sqlite'), "is WhatsApp's iPhone contacts database", {}

def incomplete(truth, tmp):
    b = write_ios_backup(truth, tmp/'Incomplete'); (b/CHATSTORAGE[:2]/CHATSTORAGE).unlink()
    return b, 'is an incomplete backup', {}

CASES = {f.__name__: f for f in (no_whatsapp, wrong_password, no_password, truncated_in_backup, truncated_encrypted,
                                truncated_chatstorage, contacts_as_input, incomplete)}

@pytest.mark.parametrize('case', CASES)
def test_bad_input(case, truth, tmp_path):
    path, says, extra = CASES[case](truth, tmp_path)
    out = tmp_path/'out'/'parsed.jsonl'
    r = parse(path, out=out, env={k: v for k, v in os.environ.items() if k != PASSWORD_ENV} | extra)
    line = assert_user_error(r, path, out)
    assert says in line, line
    assert not out.parent.exists() or not any(out.parent.iterdir())
    for secret in (PASSWORD, 'hunter2'): assert secret not in r.stderr  # a password is never echoed

def test_owner_required(backups, tmp_path):
    r = run_chatmimic('parse', backups[0], '-o', tmp_path/'x.jsonl', '-q')
    assert 'the owner is not named' in assert_user_error(r, backups[0], tmp_path/'x.jsonl')

def test_without_the_library(backups, monkeypatch):
    "An encrypted backup without iphone-backup-decrypt: one sentence that names the package to install."
    from chatmimic.core import UserError
    monkeypatch.setitem(sys.modules, 'iphone_backup_decrypt', None)  # as if it were not installed
    opts = ParseOptions(me=OWNER); opts.password = PASSWORD
    with pytest.raises(UserError, match='run: pip install iphone-backup-decrypt'): parse_inputs([backups[1]], opts)
