"""The embedded queue delivers every message whole while another process is still sending.

kombu's filesystem transport wrote a message file in place, so a worker could take a file before
it was written, fail to decode it, die, and lose the message (seen in CI: a dashboard test waited
for an update whose message had vanished). Here a sender process and this process race on one
folder, as the API's dispatcher and a Celery worker do.
"""

from __future__ import annotations

import multiprocessing
import time
from queue import Empty

from kombu import Connection

from lure_core.queue import celery_config, make_producer
from lure_core.settings import SharedSettings

MESSAGES = 500
PAYLOAD = "x" * 200_000  # large enough that writing a message takes a while


def _send(transport: str, options: dict) -> None:
    with Connection("filesystem://", transport=transport, transport_options=options) as sender:
        channel = sender.default_channel
        for number in range(MESSAGES):
            channel._put("updates", {"number": number, "padding": PAYLOAD})


def _receive_while_sent(transport: str, options: dict) -> tuple[list[int], list[str]]:
    """Every message the racing sender sends, read as it arrives; decoding failures listed."""
    sender = multiprocessing.get_context("spawn").Process(target=_send, args=(transport, options))
    sender.start()
    received: list[int] = []
    failures: list[str] = []
    deadline = time.monotonic() + 120
    with Connection("filesystem://", transport=transport, transport_options=options) as receiver:
        channel = receiver.default_channel
        while len(received) + len(failures) < MESSAGES and time.monotonic() < deadline:
            try:
                received.append(channel._get("updates")["number"])
            except Empty:
                if not sender.is_alive() and sender.exitcode is not None:
                    try:
                        received.append(channel._get("updates")["number"])
                    except Empty:
                        break
            except ValueError as error:  # a message read before it was written
                failures.append(type(error).__name__)
    sender.join(30)
    return received, failures


def test_a_worker_never_reads_a_message_before_it_is_written(tmp_path):
    settings = SharedSettings(data_dir=tmp_path)
    config = celery_config(settings)
    options = {**config["broker_transport_options"]}
    (tmp_path / "queue" / "in").mkdir(parents=True)
    received, failures = _receive_while_sent(config["broker_transport"], options)
    assert failures == []
    assert sorted(received) == list(range(MESSAGES))
    leftovers = list((tmp_path / "queue" / "in").iterdir())
    assert leftovers == []  # no half-written file left behind either


def test_the_server_and_its_workers_use_the_atomic_queue(tmp_path):
    producer = make_producer(SharedSettings(data_dir=tmp_path))
    with producer.connection_for_write() as connection:
        assert type(connection.transport).__name__ == "AtomicFilesystemTransport"
