import numpy as np
import pytest
from PIL import Image

from lure_client.client import encode_image, load_image_folder, load_npz_arrays


def test_image_folder_labels_follow_subfolders(tmp_path):
    for label, shade in (("0", 10), ("1", 200), ("10", 90)):
        (tmp_path / label).mkdir()
        for i in range(2):
            Image.fromarray(np.full((6, 6, 3), shade + i, np.uint8)).save(
                tmp_path / label / f"{i}.png"
            )
    (tmp_path / "1" / "notes.txt").write_text("ignored")
    x, y, classes = load_image_folder(tmp_path)
    assert classes == ["0", "1", "10"] and x.shape == (6, 6, 6, 3)
    assert y.tolist() == [0, 0, 1, 1, 10, 10]
    assert x[2, 0, 0, 0] == 200


def test_named_classes_get_indices_in_name_order(tmp_path):
    for name in ("dog", "cat"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / name / "a.jpg")
    _, y, classes = load_image_folder(tmp_path)
    assert classes == ["cat", "dog"] and y.tolist() == [0, 1]


def test_folder_without_classes_or_with_mixed_sizes_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no class subfolders"):
        load_image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a" / "1.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "a" / "2.png")
    with pytest.raises(ValueError, match="differ in size"):
        load_image_folder(tmp_path)


def test_npz_arrays_by_split(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(
        path,
        x_train=np.zeros((3, 4, 4, 1), np.uint8),
        y_train=np.arange(3),
        x_test=np.ones((2, 4, 4, 1), np.uint8),
        y_test=np.arange(2),
    )
    assert load_npz_arrays(path, "test")[0].shape == (2, 4, 4, 1)
    assert load_npz_arrays(path, "train")[1].tolist() == [0, 1, 2]
    np.savez(path, z=np.zeros(1))
    with pytest.raises(ValueError, match="neither x/y"):
        load_npz_arrays(path, "train")


def test_encode_image_round_trips_arrays_as_png():
    import base64
    import io

    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(encode_image(image)))))
    assert np.array_equal(decoded, image)


def test_a_pickle_holding_code_is_refused_with_what_to_do_instead(tmp_path):
    import pytest
    import torch

    from lure_client.client import state_dict_file

    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": Payload()}, path)
    with pytest.raises(ValueError) as refused:
        state_dict_file(path)
    message = str(refused.value)
    assert "could run code" in message and "torch.save(model.state_dict()" in message
    assert "it refers to print" in message and "Re-running" not in message
