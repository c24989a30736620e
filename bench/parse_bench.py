"""Parse speed: a 1,000,000-message synthetic msgstore.db with the study's ~95 MB of text, to JSONL.

    .venv/bin/python bench/parse_bench.py [--messages 1000000] [--text-mb 95] [--dir /tmp/chatmimic-bench]

Target (issue 2): <= 30 s on a 2-core machine, for the command a user runs (`chatmimic parse ... -q`).
The synthetic messages are short (~30 bytes), so the bench lengthens every text in place, repeating it, until
the export holds `--text-mb` MB of text, the study's corpus size (§2.3: 95.1 MB).
The reference, timed in the same process, is the least any parser must do: one SELECT over `message` with
json.dumps of each raw row to a file; the ratio ours/reference is what joins, classification and records cost.
"""
import argparse, json, sqlite3, subprocess, sys, time
from pathlib import Path
from chatmimic.synth import synth_export
from chatmimic.parse import ParseOptions, parse_inputs, write_jsonl

def reference(db, out):
    "The floor: stream every message row out as JSON, no joins, no classification."
    con = sqlite3.connect(f'file:{db}?mode=ro', uri=True)
    with open(out, 'w') as f:
        for row in con.execute('select _id, chat_row_id, from_me, timestamp, message_type, text_data from message'):
            f.write(json.dumps(row, ensure_ascii=False)); f.write('\n')
    con.close()

def text_mb(con): return con.execute('select coalesce(sum(length(cast(text_data as blob))), 0) from message').fetchone()[0] / 1e6

def inflate(db, target_mb):
    "Lengthen every text (repeating it, cut at a whole factor) until the table holds about `target_mb` MB of text."
    con = sqlite3.connect(db)
    f = target_mb / text_mb(con)
    if f > 1:
        k = int(f) + 1  # enough copies, then cut each text to f times its length
        rep = " || ' ' || ".join(['text_data'] * k)
        con.execute(f'update message set text_data = substr({rep}, 1, cast(length(text_data) * {f} as int)) where text_data is not null')
        con.commit()
    mb = text_mb(con); con.close()
    return mb

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--messages', type=int, default=1_000_000)
    ap.add_argument('--text-mb', type=float, default=95.0, help="MB of message text (the study's corpus: 95)")
    ap.add_argument('--dir', default='/tmp/chatmimic-bench')
    ap.add_argument('--target', type=float, default=30.0, help='seconds allowed (issue 2)')
    a = ap.parse_args()
    d = Path(a.dir)/f'n{a.messages}-t{a.text_mb:g}'; d.mkdir(parents=True, exist_ok=True)
    db, wa, out = d/'msgstore.db', d/'wa.db', d/'messages.jsonl'
    if not (d/'ready').exists():
        t = time.perf_counter(); synth_export(d, n_messages=a.messages, seed=0)
        mb = inflate(db, a.text_mb); (d/'ready').touch()
        print(f'synthetic export: {a.messages:,} messages, {mb:.0f} MB of text, built in {time.perf_counter()-t:.1f} s')
    t = time.perf_counter(); reference(db, d/'ref.jsonl'); t_ref = time.perf_counter() - t
    t = time.perf_counter()
    msgs = parse_inputs([db], ParseOptions(me='Paolo Neri', contacts=str(wa)))
    t_read = time.perf_counter() - t
    n = write_jsonl(msgs, out); t_lib = time.perf_counter() - t
    del msgs
    cli = Path(sys.executable).with_name('chatmimic')
    t = time.perf_counter()
    subprocess.run([str(cli), 'parse', str(db), '--contacts', str(wa), '--me', 'Paolo Neri', '-o', str(out), '-q'], check=True)
    t_cli = time.perf_counter() - t
    print(f'{n:,} messages, JSONL {out.stat().st_size/1e6:.0f} MB')
    print(f'library: read+renumber {t_read:.1f} s, + write {t_lib - t_read:.1f} s = {t_lib:.1f} s ({n/t_lib:,.0f} msg/s)')
    print(f'command `chatmimic parse -q`: {t_cli:.1f} s')
    print(f'reference (bare scan + json): {t_ref:.1f} s; ratio ours/reference = {t_lib/t_ref:.2f}')
    print(f'target {a.target:.0f} s: ratio target/command = {a.target/t_cli:.2f} ({"met" if t_cli <= a.target else "NOT met"})')

if __name__ == '__main__': main()
