"""What the bench scripts measure of a command: wall time, CPU time and peak memory of its whole process tree.

Peak memory is sampled every `every` seconds over the process and all its descendants (tokenizing workers included):
RSS summed (pages shared between processes counted in each) and PSS summed (a shared page split between its
sharers: what the tree really holds). The main process's own peak RSS comes exactly from the kernel (wait4), except
when it is no larger than this (measuring) process's own peak at the start: Linux carries the forking process's peak
into the child's across exec, so such a value says nothing about the child and the sampled peak is used alone.
CPU time is user + system of the process and every descendant it waited for; on a loaded machine it moves less than
wall time, so the scripts print a ratio of both against a reference run the same way in the same run.
"""
import os, resource, subprocess, threading, time
import psutil

def _tree(p:psutil.Process) -> list:
    try: return [p] + p.children(recursive=True)
    except psutil.Error: return [p]

def _sum(procs, what:str) -> int:
    n = 0
    for q in procs:
        try: n += q.memory_full_info().pss if what == 'pss' else q.memory_info().rss
        except psutil.Error: pass  # ended between listing and reading
    return n

def run_measured(cmd, every:float=0.2, stdout=None, stderr=None) -> dict:
    "Run `cmd` (a list; output to files or inherited, never a pipe) to its end: exit status, wall and CPU seconds, peak RSS and PSS of its process tree, its own peak RSS (bytes)."
    mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # what a child inherits as its peak at exec
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr)
    peak, done = {'rss': 0, 'pss': 0}, threading.Event()
    def sample():
        p = psutil.Process(proc.pid)
        while not done.is_set():
            procs = _tree(p)
            for k in peak: peak[k] = max(peak[k], _sum(procs, k))
            done.wait(every)
    th = threading.Thread(target=sample, daemon=True); th.start()
    _, status, ru = os.wait4(proc.pid, 0)  # the exact resources of the child and of what it waited for
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set(); th.join()
    return dict(rc=proc.returncode, wall=wall, cpu=ru.ru_utime + ru.ru_stime, rss=peak['rss'], pss=peak['pss'], self_rss=ru.ru_maxrss * 1024 if ru.ru_maxrss * 1024 > mine else 0)

def gb(n:int) -> str: return f'{n / 2**30:.2f} GiB'
def mb(n:int) -> str: return f'{n / 2**20:.0f} MiB'

def line(name:str, r:dict, ref:dict|None=None, mem=mb) -> str:
    "One result: time, CPU time, peak memory; and the ratios to `ref` when given."
    s = f"{name}: {r['wall']:.1f} s ({r['cpu']:.1f} s CPU), peak RSS {mem(max(r['rss'], r['self_rss']))}, PSS {mem(r['pss'])} (process tree)"
    if ref: s += f"; ratio to the reference {r['wall'] / ref['wall']:.2f} wall, {r['cpu'] / ref['cpu']:.2f} CPU"
    return s
