"""Parse speed: a 1,000,000-message synthetic msgstore.db to JSONL, against a bare scan of the same table.

    .venv/bin/python bench/parse_bench.py [--messages 1000000] [--dir /tmp/chatmimic-bench]

Target (issue 2): <= 30 s on a 2-core machine. The reference, timed in the same process, is the least any parser
must do: one SELECT over `message` with json.dumps of each raw row to a file. The ratio ours/reference says what
the joins, the classification and the record building cost on top of that floor.
"""
import argparse, json, os, sqlite3, sys, time
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

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--messages', type=int, default=1_000_000)
    ap.add_argument('--dir', default='/tmp/chatmimic-bench')
    ap.add_argument('--target', type=float, default=30.0, help='seconds allowed (issue 2)')
    a = ap.parse_args()
    d = Path(a.dir); d.mkdir(parents=True, exist_ok=True)
    db, wa = d/'msgstore.db', d/'wa.db'
    if not db.exists() or os.environ.get('REGEN'):
        t = time.perf_counter(); synth_export(d, n_messages=a.messages, seed=0)
        print(f'synthetic export: {a.messages:,} messages in {time.perf_counter()-t:.1f} s, msgstore.db {db.stat().st_size/1e6:.0f} MB')
    t = time.perf_counter(); reference(db, d/'ref.jsonl'); t_ref = time.perf_counter() - t
    t = time.perf_counter()
    msgs = parse_inputs([db], ParseOptions(me='Paolo Neri', contacts=str(wa)))
    n = write_jsonl(msgs, d/'messages.jsonl'); t_ours = time.perf_counter() - t
    text_mb = sum(len(m.text.encode()) for m in msgs if m.text) / 1e6
    print(f'parsed {n:,} messages ({text_mb:.0f} MB of text) in {t_ours:.1f} s = {n/t_ours:,.0f} msg/s')
    print(f'reference (bare scan + json): {t_ref:.1f} s; ratio ours/reference = {t_ours/t_ref:.2f}')
    print(f'target {a.target:.0f} s: ratio target/ours = {a.target/t_ours:.2f} ({"met" if t_ours <= a.target else "NOT met"})')

if __name__ == '__main__': main()
