"""Parse speed: a 1,000,000-message synthetic msgstore.db (or iPhone ChatStorage.sqlite) with the study's ~95 MB of text, to JSONL.

    .venv/bin/python bench/parse_bench.py [--format msgstore|ios] [--messages 1000000] [--text-mb 95] [--dir /tmp/chatmimic-bench]

Target (issue 2): <= 30 s on a 2-core machine, for the command a user runs (`chatmimic parse ... -q`).
The synthetic messages are short (~30 bytes), so the bench lengthens every text in place, repeating it, until
the export holds `--text-mb` MB of text, the study's corpus size (§2.3: 95.1 MB).
The reference, timed in the same process, is the least any parser must do: one SELECT over the message table
(`message`, or the iPhone's `ZWAMESSAGE`) with json.dumps of each raw row to a file; the ratio ours/reference is what
joins, classification and records cost. `--format ios` holds the iPhone database to the same 30 s budget (issue 17).
"""
import argparse, json, resource, sqlite3, subprocess, sys, time
from pathlib import Path
from chatmimic.synth import make_truth, synth_export
from chatmimic.synth_exports import write_chatstorage, write_contactsv2
from chatmimic.parse import ParseOptions, parse_inputs, write_jsonl

FORMATS = {  # the message table, its text column, the floor's columns
    'msgstore': ('message', 'text_data', '_id, chat_row_id, from_me, timestamp, message_type, text_data'),
    'ios': ('ZWAMESSAGE', 'ZTEXT', 'Z_PK, ZCHATSESSION, ZISFROMME, ZMESSAGEDATE, ZMESSAGETYPE, ZTEXT')}

def reference(db, out, fmt='msgstore'):
    "The floor: stream every message row out as JSON, no joins, no classification."
    table, _, cols = FORMATS[fmt]
    con = sqlite3.connect(f'file:{db}?mode=ro', uri=True)
    with open(out, 'w') as f:
        for row in con.execute(f'select {cols} from {table}'):
            f.write(json.dumps(row, ensure_ascii=False)); f.write('\n')
    con.close()

def text_mb(con, fmt='msgstore'):
    table, col, _ = FORMATS[fmt]
    return con.execute(f'select coalesce(sum(length(cast({col} as blob))), 0) from {table}').fetchone()[0] / 1e6

def inflate(db, target_mb, fmt='msgstore'):
    "Lengthen every text (repeating it, cut at a whole factor) until the table holds about `target_mb` MB of text."
    table, col, _ = FORMATS[fmt]
    con = sqlite3.connect(db)
    f = target_mb / text_mb(con, fmt)
    if f > 1:
        k = int(f) + 1  # enough copies, then cut each text to f times its length
        rep = " || ' ' || ".join([col] * k)
        con.execute(f'update {table} set {col} = substr({rep}, 1, cast(length({col}) * {f} as int)) where {col} is not null')
        con.commit()
    mb = text_mb(con, fmt); con.close()
    return mb

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--messages', type=int, default=1_000_000)
    ap.add_argument('--text-mb', type=float, default=95.0, help="MB of message text (the study's corpus: 95)")
    ap.add_argument('--dir', default='/tmp/chatmimic-bench')
    ap.add_argument('--target', type=float, default=30.0, help='seconds allowed (issue 2)')
    ap.add_argument('--format', choices=list(FORMATS), default='msgstore', help="Android's msgstore.db or the iPhone's ChatStorage.sqlite")
    a = ap.parse_args()
    d = Path(a.dir)/f'{"ios-" if a.format == "ios" else ""}n{a.messages}-t{a.text_mb:g}'; d.mkdir(parents=True, exist_ok=True)
    db, wa = (d/'msgstore.db', d/'wa.db') if a.format == 'msgstore' else (d/'ChatStorage.sqlite', d/'ContactsV2.sqlite')
    out = d/'messages.jsonl'
    if not (d/'ready').exists():
        t = time.perf_counter()
        if a.format == 'msgstore': synth_export(d, n_messages=a.messages, seed=0)
        else: truth = make_truth(a.messages, 0); write_chatstorage(truth, db); write_contactsv2(truth, wa); del truth
        mb = inflate(db, a.text_mb, a.format); (d/'ready').touch()
        print(f'synthetic {db.name}: {a.messages:,} messages, {mb:.0f} MB of text, built in {time.perf_counter()-t:.1f} s')
    cpu = lambda: time.process_time()  # CPU seconds: on a shared, loaded machine wall time alone says little
    kids = lambda: (lambda r: r.ru_utime + r.ru_stime)(resource.getrusage(resource.RUSAGE_CHILDREN))
    t, c = time.perf_counter(), cpu(); reference(db, d/'ref.jsonl', a.format); t_ref, c_ref = time.perf_counter() - t, cpu() - c
    t, c = time.perf_counter(), cpu()
    msgs = parse_inputs([db], ParseOptions(me='Paolo Neri', contacts=str(wa)))
    t_read = time.perf_counter() - t
    n = write_jsonl(msgs, out); t_lib, c_lib = time.perf_counter() - t, cpu() - c
    del msgs
    cli = Path(sys.executable).with_name('chatmimic')
    t, c = time.perf_counter(), kids()
    subprocess.run([str(cli), 'parse', str(db), '--contacts', str(wa), '--me', 'Paolo Neri', '-o', str(out), '-q'], check=True)
    t_cli, c_cli = time.perf_counter() - t, kids() - c
    print(f'{n:,} messages, JSONL {out.stat().st_size/1e6:.0f} MB')
    print(f'library: read+renumber {t_read:.1f} s, + write {t_lib - t_read:.1f} s = {t_lib:.1f} s ({n/t_lib:,.0f} msg/s)')
    print(f'command `chatmimic parse -q`: {t_cli:.1f} s ({c_cli:.1f} CPU s)')
    print(f'reference (bare scan + json): {t_ref:.1f} s; ratio ours/reference = {t_lib/t_ref:.2f}; in CPU seconds {c_lib:.1f}/{c_ref:.1f} = {c_lib/c_ref:.2f}')
    print(f'target {a.target:.0f} s: ratio target/command = {a.target/t_cli:.2f} ({"met" if t_cli <= a.target else "NOT met"}); '
          f'in CPU seconds {a.target/c_cli:.2f}')
    mb = lambda who: resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux
    print(f'peak memory: this process {mb(resource.RUSAGE_SELF):.0f} MB (build + library), the command {mb(resource.RUSAGE_CHILDREN):.0f} MB')

if __name__ == '__main__': main()
