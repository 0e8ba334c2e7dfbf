import numpy as np
from tests.helpers import DIGITS_MODEL, NPZ, npz_body
from tests.integration.in_process import admin, in_process
from tests.integration.test_data_gate_weak_model import WEAK, _post

def test_dbg(request, tmp_path, monkeypatch, digits):
    d = in_process(request, "sqlite", tmp_path, monkeypatch)
    x, y = digits.train.x, digits.train.y
    with d.client() as client:
        admin(client).post("/v1/models", json=WEAK).raise_for_status()
        for start in (0, 300, 600):
            _post(client, x[start : start + 300], y[start : start + 300])
        print(d.run_jobs())
        _post(client, x[900:1200], (y[900:1200]+3)%10)
        print(d.run_jobs())
        _post(client, x[1200:1500], y[1200:1500])
        print(client.get("/v1/models/digits/jobs").json())
        print([ (m["index"], m["state"], m["n_samples"]) for m in client.get("/v1/models/digits/megabatches").json()])
        assert False
