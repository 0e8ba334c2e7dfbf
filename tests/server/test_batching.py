import asyncio

import numpy as np
import pytest
import torch

from lure_engine.models import ModelSpec, build_model
from lure_engine.preprocess import Preprocessing
from service.serving.batching import MicroBatcher
from service.serving.engines import EagerEngine


@pytest.fixture()
def net():
    model = build_model(ModelSpec("small_cnn", 10, 1, 8, 0.25), seed=0).eval()
    return EagerEngine(model, Preprocessing(8, 1, (0.5,), (0.25,)), torch.device("cpu"))


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)


def test_concurrent_requests_share_forward_passes_and_get_their_own_answers(net):
    batcher, calls = MicroBatcher(max_images=64), []

    def forward(batch):
        calls.append(len(batch))
        return net.probabilities(batch)

    requests = [_images(1 + i % 3, seed=i) for i in range(20)]

    async def go():
        return await asyncio.gather(*[batcher.run("v1", forward, images) for images in requests])

    answers = asyncio.run(go())
    for images, answer in zip(requests, answers, strict=False):
        assert np.allclose(answer, net.probabilities(images), atol=1e-5)
    assert sum(calls) == sum(len(r) for r in requests)
    assert len(calls) < len(requests)  # batched: fewer forward passes than requests
    assert max(calls) <= 64


def test_batches_respect_the_image_cap(net):
    batcher, calls = MicroBatcher(max_images=5), []

    def forward(batch):
        calls.append(len(batch))
        return net.probabilities(batch)

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
        return await batcher.run("v1", net.probabilities, _images(1, 9))

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


@pytest.mark.parametrize("parallel", [1, 2, 3])
def test_at_most_parallel_batches_run_at_once_and_every_request_is_answered(net, parallel):
    import threading
    import time

    running, most, lock, sizes = [0], [0], threading.Lock(), []

    def slow(batch):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
            sizes.append(len(batch))
        return net.probabilities(batch)

    batcher = MicroBatcher(max_images=4)
    requests = [_images(1, seed=i) for i in range(24)]

    async def go():
        return await asyncio.gather(
            *[batcher.run("v1", slow, images, parallel=parallel) for images in requests]
        )

    answers = asyncio.run(go())
    for images, answer in zip(requests, answers, strict=True):
        assert np.allclose(answer, net.probabilities(images), atol=1e-5)
    assert most[0] == parallel  # the slots are used, and never exceeded
    assert sum(sizes) == 24 and max(sizes) <= 4
    assert not batcher._pending and not batcher._draining  # nothing left behind
