"""Execution providers: short names, availability, and a session that provably runs on the EP
asked for. onnxruntime quietly adds or falls back to the CPU provider; a benchmark that did the
same would report CPU numbers under a GPU label, so every mismatch is an error instead."""

from __future__ import annotations

from ..errors import UsageError

SHORT_NAMES = {
    "cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider", "rocm": "ROCMExecutionProvider", "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider", "coreml": "CoreMLExecutionProvider", "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider", "xnnpack": "XnnpackExecutionProvider", "qnn": "QNNExecutionProvider",
    "nnapi": "NnapiExecutionProvider", "webgpu": "WebGpuExecutionProvider", "azure": "AzureExecutionProvider",
}

HOW_TO_GET = {
    "CUDAExecutionProvider": "pip uninstall onnxruntime && pip install onnxruntime-gpu (both install the same "
                             "module and conflict), with a CUDA-capable GPU and driver",
    "TensorrtExecutionProvider": "pip uninstall onnxruntime && pip install onnxruntime-gpu, plus TensorRT "
                                 "libraries on the library path, with an NVIDIA GPU",
    "OpenVINOExecutionProvider": "pip uninstall onnxruntime && pip install onnxruntime-openvino",
    "DmlExecutionProvider": "pip uninstall onnxruntime && pip install onnxruntime-directml (Windows)",
    "ROCMExecutionProvider": "an onnxruntime build with ROCm (AMD GPU)",
    "MIGraphXExecutionProvider": "an onnxruntime build with MIGraphX (AMD GPU)",
    "QNNExecutionProvider": "pip install onnxruntime-qnn (Qualcomm NPU)",
}


def resolve_provider(name: str) -> str:
    """Full EP name for a short (`cuda`) or full (`CUDAExecutionProvider`) name; error if unavailable."""
    import onnxruntime as ort

    full = SHORT_NAMES.get(name.lower(), name)
    if not full.endswith("ExecutionProvider"):
        raise UsageError(f"--provider {name}: unknown execution provider (short names: {', '.join(sorted(SHORT_NAMES))}, "
                         "or a full onnxruntime name like CUDAExecutionProvider)")
    available = ort.get_available_providers()
    if full not in available:
        how = HOW_TO_GET.get(full, "an onnxruntime build that includes it")
        raise UsageError(f"--provider {name}: {full} is not available in this onnxruntime "
                         f"{ort.__version__} (available: {', '.join(available)}); to get it: {how}")
    return full


def providers_for(full: str) -> list[str]:
    """TensorRT hands unsupported subgraphs to CUDA, as onnxruntime's docs recommend."""
    if full == "TensorrtExecutionProvider":
        import onnxruntime as ort

        return [full] + (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in ort.get_available_providers() else [])
    return [full]


def check_session_provider(session, full: str, model_name: str) -> None:
    """The session must really use `full`: onnxruntime falls back to CPU when an EP fails to load."""
    used = session.get_providers()
    if full not in used:
        raise UsageError(f"--provider: {model_name}: onnxruntime created the session on {', '.join(used)} instead of "
                         f"{full} (the provider failed to initialise; check its libraries and device); "
                         "not falling back to CPU")


OPT_LEVELS = ("disable", "basic", "extended", "all")


def create_session(model, full: str, *, threads: int = 0, inter_threads: int = 0, opt_level: str = "all",
                   model_name: str = "model", spin: bool = True):
    """A session on exactly `full`. `inter_threads` > 0 switches to the parallel executor, the only
    one that uses inter-op threads. `spin=False` stops idle intra-op workers from busy-waiting:
    with several multi-threaded sessions interleaved on few cores, one session's spinning workers
    otherwise steal the cores the next session's workers need."""
    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if inter_threads:
        opts.inter_op_num_threads = inter_threads
        opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    if isinstance(model, onnx.ModelProto):
        from ..core.external import prepare_session

        model = prepare_session(model, opts, prepack=True).SerializeToString()  # timed as deployed
    elif not isinstance(model, bytes):
        model = str(model)
    session = ort.InferenceSession(model, sess_options=opts, providers=providers_for(full))
    check_session_provider(session, full, model_name)
    return session
