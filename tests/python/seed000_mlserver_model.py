"""Seed 000's model as it is served with MLServer, written as the seed writes it: its
``predict`` receives MLServer's ``InferenceRequest`` and decodes it itself (``decode_request``),
and answers a dict that MLServer encodes (``encode_response_model``). The seed shows what
``my_custom_function`` returns for ``{"a": 10}`` (``{'result': 20}``) but not its body; the
body here gives exactly that.

Import ``test_serving_protocol`` before this module: it loads MLServer's codecs without the
server modules that importing the ``mlserver`` package would start in the test process.
"""

import json

import mlflow
import numpy as np
from mlserver.codecs.string import StringRequestCodec
from mlserver.types import InferenceRequest


class MyModel(mlflow.pyfunc.PythonModel):
    def decode_request(self, model_input: InferenceRequest) -> dict:
        raw_json = StringRequestCodec.decode_request(model_input)  # Decode an inference request into a high-level Python object
        # raw_json = ['{"a": 10}'], тип raw_json: <class 'list'>
        _input = json.loads(raw_json[0])
        # raw_json[0] = {"a": 10}, тип raw_json[0] : <class 'str'>
        return _input

    def my_custom_function(self, model_input):
        return {"result": model_input["a"] * 2}

    def predict(self, context, request_input):
        print(f"Полученный predict запрос: {request_input}, тип: {type(request_input)}")
        model_input = self.decode_request(request_input)
        print(f"Результат decode_request для передачи в модель: {model_input}, тип: {type(model_input)}")

        model_output = self.my_custom_function(model_input)
        print(f"Результат работы модели (my_custom_function): {model_output}, тип: {type(model_output)}")

        inference_response = self.encode_response_model(model_output)
        print(f"Обработанный ответ модели для передачи mlserver: {request_input}, тип: {type(request_input)}")

        return inference_response

    def encode_response_model(self, model_output: dict) -> dict:
        _output = json.dumps(model_output)  # получаем JSON строку
        _output_np = np.array(_output, dtype="object")  # кладем ее в array
        inference_response = {"output": _output_np}  # формируем словарь-ответ
        return inference_response


class InputTypeModel(mlflow.pyfunc.PythonModel):
    """Answers the type of what ``predict`` received, to show which requests are decoded."""

    def predict(self, context, model_input):
        return {"received": np.array([type(model_input).__name__], dtype="object")}
