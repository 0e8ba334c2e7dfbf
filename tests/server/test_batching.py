import asyncio

import numpy as np
import pytest
import torch

from lure_engine.models import ModelSpec, build_model
from service.batching import MicroBatcher
from service.engines import EagerEngine
from service.inference import predict_probabilities


@pytest.fixture()
def net():
    model = build_model(ModelSpec("small_cnn", 10, 1, 8, 0.25), seed=0).eval()
    return EagerEngine(model, torch.device("cpu"))


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)


def test_concurrent_requests_share_forward_passes_and_get_their_own_answers(net):
    batcher, calls = MicroBatcher(max_images=64), []

    def forward(batch):
        calls.append(len(batch))
        return predict_probabilities(net, batch)

    requests = [_images(1 + i % 3, seed=i) for i in range(20)]

    async def go():
        return await asyncio.gather(*[batcher.run("v1", forward, images) for images in requests])

    answers = asyncio.run(go())
    for images, answer in zip(requests, answers, strict=False):
        assert np.allclose(answer, predict_probabilities(net, images), atol=1e-5)
    assert sum(calls) == sum(len(r) for r in requests)
    assert len(calls) < len(requests)  # batched: fewer forward passes than requests
    assert max(calls) <= 64


def test_batches_respect_the_image_cap(net):
    batcher, calls = MicroBatcher(max_images=5), []

    def forward(batch):
        calls.append(len(batch))
        return predict_probabilities(net, batch)

    async def go():
        return await asyncio.gather(*[batcher.run("v1", forward, _images(2, i)) for i in range(8)])

    asyncio.run(go())
    assert sum(calls) == 16 and max(calls) <= 5


def test_a_failing_forward_fails_every_waiting_request_and_the_next_one_works(net):
    batcher = MicroBatcher()

    def broken(batch):
        raise RuntimeError("boom")

    async def go():
        results = await asyncio.gather(
            *[batcher.run("v1", broken, _images(1, i)) for i in range(4)], return_exceptions=True
        )
        assert all(isinstance(r, RuntimeError) for r in results)
        return await batcher.run("v1", lambda b: predict_probabilities(net, b), _images(1, 9))

    assert asyncio.run(go()).shape == (1, 10)


def test_predict_route_batches_under_concurrency(client, two_versions, digits):
    from concurrent.futures import ThreadPoolExecutor

    from tests.helpers import png_images

    images = png_images(digits.test.x[:16])
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda i: client.post("/v1/models/digits/predict", json={"images": [images[i]]}),
                range(16),
            )
        )
    assert all(a.status_code == 200 and a.headers["x-model-version"] == "2" for a in answers)
    single = client.post("/v1/models/digits/predict", json={"images": images}).json()["predictions"]
    for i, answer in enumerate(answers):
        assert answer.json()["predictions"][0]["label"] == single[i]["label"]
        assert np.allclose(
            answer.json()["predictions"][0]["probabilities"], single[i]["probabilities"], atol=1e-4
        )
