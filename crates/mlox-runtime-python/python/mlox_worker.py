"""mlox model worker: loads one MLflow model with ``mlflow.pyfunc.load_model`` and answers
prediction requests from the mlox server that started it.

The server embeds this file in its binary and runs ``python mlox_worker.py MODEL_DIR``. Messages
travel over the process's original stdin/stdout in both directions as::

    u32 little-endian header length | header (UTF-8 JSON) | parts

where ``header["parts"]`` lists each part's ``nbytes`` and every part is one Arrow IPC stream.
The first message the worker sends is ``{"status": "ready", ...}`` or
``{"status": "load_error", ...}``; after that it answers each request with
``{"status": "ok", ...}`` or ``{"status": "error", ...}`` carrying the request's ``id``.
End of input means the server is gone or is shutting the worker down: the worker exits.
"""

import json
import os
import signal
import struct
import sys
import traceback

PROTOCOL_VERSION = 1
# Name of the single column/tensor a Series, list, scalar or bare ndarray result becomes; the
# same key MLflow's scoring server wraps such results in.
PREDICTIONS = "predictions"
# Error text crosses into HTTP responses; MLflow's schema errors embed a repr of the whole input.
MAX_MESSAGE_CHARS = 4000
# Exceptions with these MLflow error codes are the caller's fault (schema enforcement, params).
BAD_INPUT_CODES = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST"}


def take_protocol_streams():
    """Keeps the pipes to the server private: model code that prints, or C libraries writing to
    fd 1, would otherwise corrupt the message stream. Their output goes to stderr instead, which
    the server forwards to its log."""
    proto_in = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)
    sys.stdout = sys.stderr
    return proto_in, proto_out


def read_exact(stream, n):
    chunks = []
    remaining = n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise EOFError("the server closed the pipe in the middle of a message")
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_message(stream):
    head = stream.read(4)
    if not head:
        return None
    if len(head) < 4:
        head += read_exact(stream, 4 - len(head))
    (length,) = struct.unpack("<I", head)
    header = json.loads(read_exact(stream, length))
    parts = [read_exact(stream, int(p["nbytes"])) for p in header.get("parts", [])]
    return header, parts


def write_message(stream, header, parts=()):
    parts = list(parts)
    if parts:
        header["parts"] = [dict(meta, nbytes=len(data)) for meta, data in parts]
    encoded = json.dumps(header, separators=(",", ":"), default=str).encode()
    stream.write(struct.pack("<I", len(encoded)))
    stream.write(encoded)
    for _, data in parts:
        stream.write(data)
    stream.flush()


def qualified_name(exc):
    cls = type(exc)
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    # MlflowException is what users know it as; its module path is noise.
    if cls.__module__.startswith("mlflow."):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def exception_message(exc):
    message = getattr(exc, "message", None)
    if not isinstance(message, str):
        message = str(exc)
    if not message and exc.__cause__ is not None:
        message = f"{qualified_name(exc.__cause__)}: {exception_message(exc.__cause__)}"
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + " …(truncated)"
    return message


def innermost_location(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return None
    frame = frames[-1]
    return f"{frame.filename}:{frame.lineno} in {frame.name}"


def classify(exc):
    code = getattr(exc, "error_code", None)
    if code in BAD_INPUT_CODES:
        return "bad_input"
    if isinstance(exc, ValueError):
        return "bad_input"
    return "internal"


class MissingPackage(Exception):
    """A package the request's contract needs is not importable in the model's environment."""


def error_header(request_id, kind, exc, prefix=""):
    return {
        "status": "error",
        "id": request_id,
        "error_kind": kind,
        "error_type": qualified_name(exc),
        "message": prefix + exception_message(exc),
        "location": innermost_location(exc),
    }


# ---- inputs -------------------------------------------------------------------------------


def read_batch(data):
    import pyarrow as pa

    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    return table


def _plain_numeric(arrow_type):
    import pyarrow as pa

    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type)


def frame_of(table):
    """The DataFrame for an Arrow table. Numeric and boolean columns without nulls become the
    numpy dtypes `to_pandas` would give them, without its general machinery (half the cost of
    a small request); anything else goes through `to_pandas`."""
    import pandas as pd

    names = table.column_names
    if (
        len(set(names)) == len(names)
        and all(_plain_numeric(c.type) and c.null_count == 0 for c in table.columns)
        and not any(str(n) != n for n in names)
    ):
        return pd.DataFrame({n: table.column(i).to_numpy() for i, n in enumerate(names)})
    return table.to_pandas()


def decode_input(header, parts):
    import numpy as np

    kind = header.get("input")
    metas = header.get("parts", [])
    if kind == "frame":
        if len(parts) != 1:
            raise ValueError(f"a frame request carries one part, got {len(parts)}")
        # pyarrow picks the dtypes pandas itself would for the same values (including pandas'
        # default string dtype), so the model sees what `pd.DataFrame(...)` would give it.
        return frame_of(read_batch(parts[0]))
    if kind == "tensors":
        arrays = {}
        for meta, data in zip(metas, parts):
            column = read_batch(data).column(0)
            array = column.to_numpy(zero_copy_only=False)
            if not array.flags.writeable:
                # Zero-copy views of the message are read-only; models may scale inputs in place.
                array = array.copy()
            shape = meta.get("shape")
            if shape is not None:
                array = array.reshape(shape)
            arrays[meta.get("name") or ""] = array
        if len(arrays) == 1 and "" in arrays:
            return arrays[""]
        if "" in arrays:
            raise ValueError("when several tensors are sent, each needs a name")
        return arrays
    raise ValueError(f"unknown input kind {kind!r}")


# ---- outputs ------------------------------------------------------------------------------


def normalize_array(array):
    """One Arrow type per kind of value, so the server sees Utf8 and never LargeUtf8, dictionary
    or view encodings depending on how pandas happened to store a column."""
    import pyarrow as pa

    t = array.type
    if pa.types.is_dictionary(t):
        array = array.dictionary_decode()
        t = array.type
    if pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t):
        array = array.cast(pa.string())
    elif pa.types.is_large_binary(t) or getattr(pa.types, "is_binary_view", lambda _: False)(t):
        array = array.cast(pa.binary())
    return array


def to_arrow_array(values):
    import numpy as np
    import pyarrow as pa

    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # Mixed Python objects have no Arrow type; their text is the most faithful answer left.
        if isinstance(values, np.ndarray):
            values = values.astype(str)
        else:
            values = [None if v is None else str(v) for v in values]
        array = pa.array(values)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return normalize_array(array)


def ipc_stream(batch):
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue()


# What a frame answer was in Python, in its Arrow schema's metadata: MLflow's scoring server
# renders a DataFrame and a Series as records but an array, a list or a scalar as they are, so
# `/invocations` needs to know which one the columns came from.
RESULT_KEY = b"mlox.result"
SERIES_NAME_KEY = b"mlox.series_name"


def frame_part(df, result="dataframe"):
    import numpy as np
    import pyarrow as pa

    names = [str(c) for c in df.columns]
    # Plain numpy columns go to Arrow straight from their array (twice as fast as through the
    # Series); extension and object columns keep the general path.
    dtypes = list(df.dtypes)
    arrays = []
    for i, dtype in enumerate(dtypes):
        column = df.iloc[:, i]
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            arrays.append(normalize_array(pa.array(column.to_numpy())))
        else:
            arrays.append(to_arrow_array(column))
    batch = pa.RecordBatch.from_arrays(arrays, names=names).replace_schema_metadata({RESULT_KEY: result})
    return ({"name": None, "shape": None}, ipc_stream(batch))


def column_part(values, result, series_name=None):
    import pyarrow as pa

    metadata = {RESULT_KEY: result}
    if result == "series":
        # pandas names the records' key after the Series (0 when it has no name).
        metadata[SERIES_NAME_KEY] = json.dumps(0 if series_name is None else series_name, default=str)
    batch = pa.RecordBatch.from_arrays([to_arrow_array(values)], names=[PREDICTIONS])
    batch = batch.replace_schema_metadata(metadata)
    return ({"name": None, "shape": None}, ipc_stream(batch))


def tensor_part(name, value):
    import numpy as np
    import pyarrow as pa

    array = np.asarray(value)
    flat = to_arrow_array(np.ascontiguousarray(array).reshape(-1))
    batch = pa.RecordBatch.from_arrays([flat], names=["data"])
    return ({"name": str(name), "shape": list(array.shape)}, ipc_stream(batch))


def encode_output(result):
    """Maps what pyfunc models return onto a frame or tensors: DataFrame → frame; Series, list,
    1-D array or scalar → a one-column frame named ``predictions``; N-D array → one tensor named
    ``predictions``; dict → one tensor per key."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(result, pd.DataFrame):
        return "frame", [frame_part(result)]
    if isinstance(result, pd.Series):
        return "frame", [column_part(result, "series", result.name)]
    if isinstance(result, np.ndarray):
        if result.ndim == 0:
            return "frame", [column_part(result.reshape(-1), "scalar")]
        if result.ndim == 1:
            return "frame", [column_part(result, "list")]
        return "tensors", [tensor_part(PREDICTIONS, result)]
    if isinstance(result, dict):
        return "tensors", [tensor_part(k, v) for k, v in result.items()]
    if isinstance(result, (list, tuple)):
        try:
            array = np.asarray(result)
        except ValueError:
            array = None  # ragged: leave it to Arrow's list type
        if array is not None and array.ndim >= 2:
            return "tensors", [tensor_part(PREDICTIONS, array)]
        return "frame", [column_part(list(result), "list")]
    if isinstance(result, (str, bytes, bool, int, float, np.generic)):
        return "frame", [column_part([result], "scalar")]
    if isinstance(result, (pa.Table, pa.RecordBatch)):
        return "frame", [frame_part(result.to_pandas())]
    if result is None:
        raise TypeError("the model's predict returned None")
    raise TypeError(f"the model returned a {type(result).__name__}, which mlox cannot send back")


# ---- MLServer's contract: the inference request itself --------------------------------------
#
# MLServer's MLflow runtime decodes a request only when a content type names a codec (on the
# request, or in the model's settings); otherwise `predict` receives MLServer's own
# `InferenceRequest` object, and whatever it returns is encoded by MLServer's codecs. Models
# written for MLServer depend on both, so these requests are built and answered with the
# `mlserver` package itself, imported on first use.

_MLSERVER = None


def mlserver_api():
    global _MLSERVER
    if _MLSERVER is None:
        try:
            from mlserver.codecs import NumpyCodec
            from mlserver.codecs.utils import (
                decode_inference_request,
                encode_inference_response,
                get_decoded,
                has_decoded,
            )
            from mlserver.types import InferenceRequest, MetadataTensor, Parameters
        except ImportError as exc:
            raise MissingPackage(
                "this model is served under MLServer's MLflow runtime contract (its model-settings.json "
                "names mlserver_mlflow.MLflowRuntime and it has no signature), so MLServer's codecs "
                "decode its requests and its predict may receive an mlserver.types.InferenceRequest; "
                f"the package 'mlserver' is not importable in the model's Python environment ({exc}). "
                "Install mlserver there (pip install mlserver), as MLServer itself would need, or log "
                "the model with a signature"
            ) from exc
        try:
            # Registers MLServer's MLflow codecs (the `dict` codec) the way MLServer has them.
            from mlserver_mlflow.codecs import TensorDictCodec
        except ImportError:
            TensorDictCodec = None
        _MLSERVER = {
            "NumpyCodec": NumpyCodec,
            "decode_inference_request": decode_inference_request,
            "encode_inference_response": encode_inference_response,
            "get_decoded": get_decoded,
            "has_decoded": has_decoded,
            "InferenceRequest": InferenceRequest,
            "MetadataTensor": MetadataTensor,
            "Parameters": Parameters,
            "TensorDictCodec": TensorDictCodec,
        }
    return _MLSERVER


class _Settings:
    """The two fields of MLServer's ModelSettings its codecs read: the model's name and version,
    and `parameters.content_type`."""

    def __init__(self, name, version, content_type):
        self.name = name
        self.parameters = _SettingsParameters(version, content_type)


class _SettingsParameters:
    def __init__(self, version, content_type):
        self.version = version
        self.content_type = content_type


def _bytes_elements(values):
    import base64

    return [base64.b64decode(v) for v in values]


def build_inference_request(header, parts):
    """The request as MLServer would hand it to the model: BYTES that arrived as binary (gRPC,
    Triton's binary extension) are ``bytes``, those that arrived as JSON strings are ``str``."""
    api = mlserver_api()
    if len(parts) != 1:
        raise ValueError(f"an inference request travels as one part, got {len(parts)}")
    body = json.loads(parts[0])
    for index in header.get("binary_inputs", []):
        body["inputs"][index]["data"] = _bytes_elements(body["inputs"][index]["data"])
    return api["InferenceRequest"].model_validate(body)


def decode_mlserver_request(header, parts):
    api = mlserver_api()
    request = build_inference_request(header, parts)
    settings = header.get("settings") or {}
    model_settings = _Settings(settings.get("name"), settings.get("version"), settings.get("content_type"))
    metadata_inputs = {
        item["name"]: api["MetadataTensor"].model_validate(item)
        for item in settings.get("inputs") or []
        if isinstance(item, dict) and "name" in item
    }
    api["decode_inference_request"](request, model_settings, metadata_inputs)
    payload = api["get_decoded"](request) if api["has_decoded"](request) else request
    # MLServer passes the request's free-form parameters (beyond content_type and headers) as
    # the model's inference params.
    params = None
    if request.parameters is not None and request.parameters.model_extra:
        params = dict(request.parameters.model_extra)
    return payload, params, model_settings


def _tensor_dict_response(api, model_settings, payload):
    codec = api["TensorDictCodec"]
    if codec is not None:
        return codec.encode_response(model_settings.name, payload, model_settings.parameters.version)
    # MLServer's MLflow runtime encodes what no codec claims as a dict of tensors, one output
    # per key, each by the numpy codec.
    if not isinstance(payload, dict):
        raise TypeError(
            f"the model returned a {type(payload).__name__}, which MLServer's codecs cannot encode"
        )
    outputs = [api["NumpyCodec"].encode_output(name, value) for name, value in payload.items()]
    return {"outputs": outputs, "parameters": api["Parameters"](content_type="dict")}


def _plain(value):
    return value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else value


def encode_mlserver_response(result, model_settings):
    import base64

    api = mlserver_api()
    response = api["encode_inference_response"](result, model_settings)
    if response is None:
        response = _tensor_dict_response(api, model_settings, result)
    if isinstance(response, dict):
        outputs, parameters = response["outputs"], response["parameters"]
    else:
        outputs, parameters = response.outputs, response.parameters
    parameters = _plain(parameters) or {}
    # MLServer moves response headers out of the body into HTTP headers.
    parameters.pop("headers", None)
    encoded, binary = [], []
    for index, output in enumerate(outputs):
        item = _plain(output)
        data = item.get("data")
        if isinstance(data, dict) and "root" in data:
            data = data["root"]
        if not isinstance(data, list):
            data = [data]
        if any(isinstance(v, (bytes, bytearray)) for v in data):
            data = [
                base64.b64encode(v).decode() if isinstance(v, (bytes, bytearray)) else base64.b64encode(str(v).encode()).decode()
                for v in data
            ]
            binary.append(index)
        item["data"] = data
        encoded.append(item)
    return {"outputs": encoded, "parameters": parameters, "binary_outputs": binary}


def serve_request(model, header, parts):
    payload, params, model_settings = decode_mlserver_request(header, parts)
    if params is None:
        result = model.predict(payload)
    else:
        result = model.predict(payload, params=params)
    return encode_mlserver_response(result, model_settings)


# ---- main loop ----------------------------------------------------------------------------


def serve(model, proto_in, proto_out):
    while True:
        message = read_message(proto_in)
        if message is None:
            return
        header, parts = message
        request_id = header.get("id")
        if header.get("input") == "request":
            answer_request(model, proto_out, request_id, header, parts)
            continue
        try:
            data = decode_input(header, parts)
        except Exception as exc:  # noqa: BLE001 - any decoding failure is the request's fault
            write_message(proto_out, error_header(request_id, "bad_input", exc))
            continue
        params = header.get("params") or None
        try:
            if params is None:
                result = model.predict(data)
            else:
                result = model.predict(data, params=params)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported, the worker lives on
            write_message(proto_out, error_header(request_id, classify(exc), exc))
            continue
        try:
            kind, out_parts = encode_output(result)
        except Exception as exc:  # noqa: BLE001
            write_message(
                proto_out,
                error_header(request_id, "internal", exc, "cannot convert the prediction: "),
            )
            continue
        write_message(proto_out, {"status": "ok", "id": request_id, "output": kind}, out_parts)


def answer_request(model, proto_out, request_id, header, parts):
    try:
        mlserver_api()
    except MissingPackage as exc:
        write_message(proto_out, error_header(request_id, "missing_package", exc))
        return
    try:
        response = serve_request(model, header, parts)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported, the worker lives on
        write_message(proto_out, error_header(request_id, classify(exc), exc))
        return
    try:
        encoded = json.dumps(response, separators=(",", ":"), allow_nan=True, default=_json_default).encode()
    except Exception as exc:  # noqa: BLE001
        write_message(proto_out, error_header(request_id, "internal", exc, "cannot convert the prediction: "))
        return
    write_message(
        proto_out,
        {"status": "ok", "id": request_id, "output": "response"},
        [({"name": None, "shape": None}, encoded)],
    )


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def main():
    # A Ctrl-C in the server's terminal reaches the whole process group; the server decides
    # when workers stop, by closing their stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proto_in, proto_out = take_protocol_streams()
    if len(sys.argv) != 2:
        write_message(
            proto_out,
            {"status": "load_error", "error_type": "UsageError", "message": "usage: mlox_worker.py MODEL_DIR"},
        )
        return 2
    model_dir = sys.argv[1]
    try:
        import mlflow
        import mlflow.pyfunc
        import numpy  # noqa: F401 - fail at load, not at the first request
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401

        model = mlflow.pyfunc.load_model(model_dir)
    except BaseException as exc:  # noqa: BLE001 - everything here means "cannot load"
        traceback.print_exc()
        write_message(
            proto_out,
            {
                "status": "load_error",
                "error_type": qualified_name(exc),
                "message": exception_message(exc),
                "location": innermost_location(exc),
            },
        )
        return 1
    write_message(
        proto_out,
        {
            "status": "ready",
            "protocol": PROTOCOL_VERSION,
            "pid": os.getpid(),
            "python_version": sys.version.split()[0],
            "mlflow_version": mlflow.__version__,
        },
    )
    try:
        serve(model, proto_in, proto_out)
    except (EOFError, BrokenPipeError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
