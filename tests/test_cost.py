"The cost stage across its edges: the sampler against a fake NVML, clean start and stop, the CLI (flags from the config, -o/--out, key=value) on a real tiny run, bad input."
import csv, json, sys, threading, time, types
from pathlib import Path
import pytest
from conftest import assert_user_error
from chatmimic import cost, power as pw
from chatmimic.power import PowerSampler, open_sensor

ROOT = Path(__file__).resolve().parents[1]

class FakeNVML(types.ModuleType):
    "A stand-in for `pynvml` with `n` GPUs drawing `watts` each; `counter=False` is a card without the energy counter (pre-Volta)."
    class NVMLError(Exception): pass
    class NVMLError_NotSupported(NVMLError): pass
    NVML_TEMPERATURE_GPU, NVML_CLOCK_SM, NVML_CLOCK_MEM = 0, 1, 2

    def __init__(self, n=2, watts=150.0, counter=True, init_error=None):
        super().__init__('pynvml')
        self.n, self.watts, self.counter, self.init_error, self.t0, self.shut = n, watts, counter, init_error, time.monotonic(), False
    def nvmlInit(self):
        if self.init_error: raise self.NVMLError(self.init_error)
    def nvmlShutdown(self): self.shut = True
    def nvmlDeviceGetCount(self): return self.n
    def nvmlDeviceGetHandleByIndex(self, i): return i
    def nvmlDeviceGetName(self, h): return b'NVIDIA Fake 9000' if h else 'NVIDIA Fake 9000'  # old bindings return bytes
    def nvmlDeviceGetEnforcedPowerLimit(self, h): return 300_000
    def nvmlDeviceGetPowerUsage(self, h): return int(self.watts * 1000)  # mW
    def nvmlDeviceGetTotalEnergyConsumption(self, h):  # mJ since the "driver" loaded: `watts` the whole time
        if not self.counter: raise self.NVMLError_NotSupported('Not Supported')
        return int(self.watts * 1000 * (time.monotonic() - self.t0 + 100))
    def nvmlDeviceGetUtilizationRates(self, h): return types.SimpleNamespace(gpu=97, memory=40)
    def nvmlDeviceGetMemoryInfo(self, h): return types.SimpleNamespace(used=2**30, total=8 * 2**30)
    def nvmlDeviceGetTemperature(self, h, kind): return 66
    def nvmlDeviceGetClockInfo(self, h, kind): return 1710 if kind == self.NVML_CLOCK_SM else 7000

@pytest.mark.parametrize('counter', [True, False])
def test_sampler_with_fake_nvml(tmp_path, monkeypatch, counter):
    fake = FakeNVML(n=2, watts=150.0, counter=counter)
    monkeypatch.setitem(sys.modules, 'pynvml', fake)
    with PowerSampler(tmp_path, interval=0.05, sensor='nvml') as power:
        power.phase('train'); time.sleep(0.3); power.phase('eval'); time.sleep(0.1)
    s = json.loads((tmp_path/'power.json').read_text())
    assert (s['sensor'], s['energy_source']) == ('nvml', 'counter' if counter else 'integrated')
    assert s['mean_w'] == pytest.approx(300.0, rel=0.02)  # two GPUs at 150 W, from the counter or integrated
    assert s['energy_j'] == pytest.approx(300.0 * s['seconds'], rel=0.1)
    assert s['active_w'] == pytest.approx(300.0) and s['idle_w'] is None  # 97% busy throughout
    assert [d['name'] for d in s['devices']] == ['NVIDIA Fake 9000'] * 2 and s['devices'][0]['power_limit_w'] == 300.0
    rows = list(csv.DictReader(open(tmp_path/'power.csv')))
    assert len(rows) == s['samples'] >= 5 and {r['phase'] for r in rows} == {'train', 'eval'}
    assert (rows[0]['gpu1_power_w'], rows[0]['gpu1_temp_c'], rows[0]['gpu0_sm_mhz'], rows[0]['gpu0_mem_used_mib']) == ('150.0', '66', '1710', '1024.0')
    assert fake.shut  # NVML is shut down at the end

def test_nvml_init_failure_is_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, 'pynvml', FakeNVML(init_error='NVML Shared Library Not Found'))
    s, why = open_sensor('nvml')
    assert s is None and why.startswith('NVML: NVML Shared Library Not Found')

def test_no_gpu_power_is_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, 'pynvml', FakeNVML(n=0))
    assert open_sensor('nvml') == (None, 'NVML: no GPU')

def test_this_machine_without_sensor_writes_no_csv(tmp_path):
    s, why = open_sensor('auto')
    if s is not None: pytest.skip(f'this machine has a power sensor ({s.name})')
    with PowerSampler(tmp_path) as power:
        power.phase('eval')
    assert power._thread is None and not (tmp_path/'power.csv').exists()  # no thread, nothing to sample
    p = json.loads((tmp_path/'power.json').read_text())
    assert p['sensor'] == 'none' and p['mean_w'] is None and p['energy_j'] is None and 'NVML' in p['reason']

def test_sampler_stops_cleanly_when_training_fails(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'pynvml', FakeNVML(n=1))
    before = threading.active_count()
    with pytest.raises(ValueError):
        with PowerSampler(tmp_path, interval=0.02, sensor='nvml') as power:
            time.sleep(0.05); raise ValueError('training broke')
    assert not power._thread.is_alive() and threading.active_count() == before
    assert json.loads((tmp_path/'power.json').read_text())['samples'] >= 2
    assert power.stop() is power.summary  # stopping twice is harmless

def test_sampler_survives_a_failing_sensor(tmp_path, monkeypatch):
    fake = FakeNVML(n=1); monkeypatch.setitem(sys.modules, 'pynvml', fake)
    with PowerSampler(tmp_path, interval=0.02, sensor='nvml') as power:
        fake.nvmlDeviceGetPowerUsage = lambda h: 1 / 0  # a bug in a reading must never stop training
        time.sleep(0.1)
    assert power.summary['read_errors'] >= 2

def test_bad_interval_is_a_user_error():
    with pytest.raises(pw.UserError, match='not a positive number of seconds'): PowerSampler(interval=0)

def test_devices_yaml_holds_the_study_table1():
    d = cost.read_devices(ROOT/'configs'/'devices.yaml')
    assert d['eur_per_kwh'] == 0.2790
    r, a = d['devices']['rtx2070'], d['devices']['a100']
    assert (r['vram_gb'], r['cuda_cores'], r['card_eur'], r['running_eur_per_h']) == (8, 2304, 200, 0.02)
    assert (a['vram_gb'], a['cuda_cores'], a['card_eur'], a['running_eur_per_h']) == ([40, 80], 6912, 10000, [2.5, 6.5])
    assert all(isinstance(v, float) for s in d['devices'].values() for v in s['peak_flops'].values())

def test_study_table4_from_its_inputs():
    t = cost.table4(cost.STUDY_TABLE4, 0.2790, 15, 2.5, billed_h=1)
    assert t[4][1:] == ['0.65€', '0.74€'] and t[5][1:] == ['2.5€', '2.5€']
    assert cost.study_memory_bytes(100e6) == 8e9

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return pw.tiny_run(tmp_path_factory.mktemp('runs')/'tiny', steps=4, eval_every=2, batch=2, block=32, interval=0.2)

def test_cli_prints_the_cost_table_and_writes_the_report(tiny, tmp_path, chatmimic):
    r = chatmimic('cost', tiny, '-o', tmp_path/'out', '--devices', ROOT/'configs'/'devices.yaml', 'peak_seconds=0.1')
    assert r.returncode == 0, r.stderr
    assert 'MFU' in r.stdout and 'Training cost (local)' in r.stdout
    m = json.loads((tiny/'metrics.json').read_text())
    if m['power']['sensor'] == 'none': assert 'no power sensor' in r.stdout
    out = json.loads((tmp_path/'out'/'cost.json').read_text())
    c = out['runs'][0]
    assert c['tokens'] == m['tokens'] == 4 * 2 * 32 and c['mfu'] > 0 and c['peak_source'].startswith('measured here')
    assert c['train_s'] == pytest.approx(m['train_seconds']) and 0 < c['eval_share'] < 1
    assert {p.name for p in (tmp_path/'out').iterdir()} == {'cost.json', 'metrics.json', 'cost.md', 'cost.html', 'power.png'}
    assert {p.stat().st_mode & 0o777 for p in (tmp_path/'out').iterdir()} == {0o600}  # private, as everything chatmimic writes
    assert json.loads((tmp_path/'out'/'metrics.json').read_text())['tiny']['mfu'] == c['mfu']

def test_mfu_counts_the_flops_done(tiny):
    "The tiny run's model FLOPs by hand: 2 layers of 12 d^2 matrix weights and 12 L d T attention at every token, the tied 512 x 64 output layer at every position (its loop computes all logits)."
    c = cost.run_cost(tiny, peak_flops=1e12)
    L, d, V, T, tokens = 2, 64, 512, 32, 4 * 2 * 32
    assert c['model_flops'] == tokens * (6 * L * 12 * d**2 + 12 * L * d * T) + tokens * 6 * V * d
    assert c['flops_formula'].startswith('6 N_body + 12 L d T per token, 6 N_out per labelled token')

def test_cli_key_value_overrides(tiny, tmp_path, chatmimic):
    "Any field as key=value, anywhere on the line, beside the generated flags."
    r = chatmimic('cost', 'eur_per_kwh=0.5', tiny, f'out={tmp_path/"out"}', 'cloud_speedup=10', '--peak-flops', '1e12')
    assert r.returncode == 0, r.stderr
    assert '0.5000' in r.stdout and '10x faster' in r.stdout
    c = json.loads((tmp_path/'out'/'cost.json').read_text())['runs'][0]
    assert (c['eur_per_kwh'], c['peak_flops'], c['peak_source']) == (0.5, 1e12, 'given')

def test_cli_bad_run_folder(tmp_path, chatmimic):
    assert 'is not a folder' in assert_user_error(chatmimic('cost', tmp_path/'nope', '-o', tmp_path/'out'), tmp_path/'nope', tmp_path/'out')
    (tmp_path/'empty').mkdir()
    assert 'has no metrics.json' in assert_user_error(chatmimic('cost', tmp_path/'empty', '-o', tmp_path/'out'), tmp_path/'empty', tmp_path/'out')

def test_cli_bad_value(tiny, tmp_path, chatmimic):
    r = chatmimic('cost', tiny, '-o', tmp_path/'out', '--eur-per-kwh', '-1')
    assert r.returncode == 2 and 'eur_per_kwh -1 is not a positive number' in r.stderr and r.stderr.count('\n') == 1, r.stderr
    assert 'no run folder' in chatmimic('cost', '-o', tmp_path/'out').stderr

def test_cli_bad_devices_file(tiny, tmp_path, chatmimic):
    y = tmp_path/'devices.yaml'; y.write_text('devices:\n  x: {peak_flops: {fp32: 7.5e12}}\n')
    assert 'not a number' in assert_user_error(chatmimic('cost', tiny, '--devices', y, '-o', tmp_path/'out'), y, tmp_path/'out')
