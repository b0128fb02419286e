"""Device profiles: the shipped ones parse, and every mistake names its key."""

from pathlib import Path

import pytest

from cpbench.errors import UsageError
from cpbench.timing.profiles import SHIPPED, load_profile, parse_profile


def test_shipped_profiles():
    cpu = load_profile("cpu", Path("/nonexistent"))
    assert cpu.runtime == "onnxruntime" and cpu.provider == "CPUExecutionProvider" and cpu.batch == 1
    assert cpu.measure.min_runs == 500 and cpu.measure.min_time_s == 0.3
    for name in ("cpu", "cpu-1thread", "openvino"):  # the repeatable protocol: 5 rounds in fresh processes, fixed count
        measure = load_profile(name, SHIPPED).measure
        assert measure.rounds == 5 and measure.round_runs == 500 <= measure.min_runs
    openvino = load_profile("openvino", SHIPPED)
    assert openvino.runtime == "openvino" and openvino.device == "CPU" and openvino.options["PERFORMANCE_HINT"] == "LATENCY"
    cuda = load_profile("cuda", SHIPPED)
    assert cuda.provider == "CUDAExecutionProvider" and cuda.options["provider"]["device_id"] == 0
    assert load_profile("cpu-1thread", SHIPPED).threads == 1
    assert load_profile("openvino", SHIPPED).threads == 1  # chosen for repeatable answers (the reason is in the profile)
    assert openvino.clock == "runtime" and openvino.as_dict()["clock"] == "runtime"  # benchmark_app's figure
    assert cpu.clock == "wall" and load_profile("cpu-1thread", SHIPPED).clock == "wall"


def test_a_workspace_profile_wins_and_a_path_works(tmp_path):
    (tmp_path / "cpu.toml").write_text('runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\nthreads = 3\n')
    assert load_profile("cpu", tmp_path).threads == 3
    assert load_profile(str(tmp_path / "cpu.toml"), Path("/nowhere")).threads == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ('runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\nthread = 2\n', "unknown key 'thread'"),
        ('runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\nthreads = "2"\n', "key 'threads' must be a int"),
        ('provider = "CPUExecutionProvider"\n', "missing key 'runtime'"),
        ('runtime = "tensorflow"\n', "key 'runtime' is 'tensorflow'"),
        ('runtime = "onnxruntime"\n', "key 'provider' is required"),
        ('runtime = "onnxruntime"\nprovider = "X"\ngraph_optimization = "max"\n', "key 'graph_optimization'"),
        ('runtime = "onnxruntime"\nprovider = "X"\nbatch = 0\n', "key 'batch' must be >= 1"),
        ('runtime = "openvino"\n[measure]\nmin_rums = 5\n', "unknown key 'measure.min_rums'"),
        ('runtime = "openvino"\n[measure]\nmin_runs = 0\n', "key 'measure.min_runs' is out of range"),
        ('runtime = "openvino"\n[measure]\nmin_time_s = "long"\n', "key 'measure.min_time_s' must be a number"),
        ('runtime = openvino\n', "not valid TOML"),
        ('runtime = "onnxruntime"\nprovider = "X"\nthreads = 100000\n', "key 'threads' must be <= 1024"),
        ('runtime = "onnxruntime"\nprovider = "X"\n[options]\nintra_op_spinning = 0\n', "unknown ONNX Runtime option 'options.intra_op_spinning'"),
        ('runtime = "onnxruntime"\nprovider = "X"\n[options]\nenable_mem_pattern = "yes"\n', "'options.enable_mem_pattern' must be bool"),
        ('runtime = "onnxruntime"\nprovider = "X"\n[options]\nexecution_mode = "fast"\n', "'options.execution_mode' is 'fast'"),
        ('runtime = "onnxruntime"\nprovider = "X"\n[options]\npin_threads = "yes"\n', "'options.pin_threads' must be bool"),
        ('runtime = "openvino"\n[options]\nPERFORMANCE_HINTS = "LATENCY"\n', "unknown OpenVINO property 'options.PERFORMANCE_HINTS'"),
        ('runtime = "openvino"\n[options]\nPERFORMANCE_HINT = "FASTEST"\n', "'options.PERFORMANCE_HINT' is 'FASTEST'"),
        ('runtime = "openvino"\n[options]\nNUM_STREAMS = 1.5\n', "'options.NUM_STREAMS' must be int or str"),
        ('runtime = "openvino"\nclock = "cpu"\n', "key 'clock' is 'cpu'; use one of wall, runtime"),
        ('runtime = "onnxruntime"\nprovider = "X"\nclock = "runtime"\n', "onnxruntime does not; set clock"),
    ],
)
def test_profile_errors_name_the_key(text, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_profile(text, Path("profiles/x.toml"))


def test_missing_profile_lists_the_known_ones(tmp_path):
    with pytest.raises(UsageError, match="no device profile 'tpu'.*cpu, cpu-1thread, cuda, openvino"):
        load_profile("tpu", tmp_path)


def test_pinned_threads_each_get_a_cpu_of_their_own_and_the_calling_thread_the_first():
    """`options.pin_threads` of an ONNX Runtime profile: in a fresh process, as a timing worker is, the calling
    thread is pinned to the first allowed CPU and ONNX Runtime is told one CPU per other thread, in
    its 1-based numbering; a second session in the same worker (a calibration loads thousands) pins
    the same way; asking for more threads than CPUs is one error naming both."""
    import json
    import os
    import subprocess
    import sys

    import onnxruntime as ort

    from cpbench.timing.runtimes.onnxruntime import pin_threads

    allowed = sorted(os.sched_getaffinity(0))
    code = ("import json, os, onnxruntime as ort\n"
            "from cpbench.timing.runtimes.onnxruntime import pin_threads\n"
            f"first = pin_threads(ort.SessionOptions(), {min(2, len(allowed))})\n"
            f"o = ort.SessionOptions(); used = pin_threads(o, {min(2, len(allowed))})\n"
            "assert used == first, (first, used)\n"
            "print(json.dumps([used, sorted(os.sched_getaffinity(0)), o.intra_op_num_threads,"
            " o.get_session_config_entry('session.intra_op_thread_affinities') if o.intra_op_num_threads > 1 else '']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    used, affinity, threads, entry = json.loads(done.stdout)
    assert used == allowed[:threads] and affinity == [allowed[0]] and threads == min(2, len(allowed))
    assert entry == ("" if threads == 1 else str(allowed[1] + 1))
    with pytest.raises(UsageError, match=f"{len(allowed) + 1} intra-op threads but this process may run on {len(allowed)} CPUs"):
        pin_threads(ort.SessionOptions(), len(allowed) + 1)
    assert sorted(os.sched_getaffinity(0)) == allowed  # the error came before any pinning
