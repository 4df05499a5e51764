import numpy as np
import pytest
import scipy.ndimage

from csst_photoz.photometry.backend import array_module, is_cupy, ndimage_module, to_numpy


def test_numpy_inputs_give_numpy_and_scipy():
    image = np.zeros((3, 3))
    assert array_module(image, 1.0, None) is np
    assert ndimage_module(np) is scipy.ndimage
    assert not is_cupy(image)
    assert to_numpy(image) is image


@pytest.mark.gpu
def test_cupy_inputs_give_cupy():
    cupy = pytest.importorskip("cupy")
    image = cupy.zeros((3, 3))
    assert is_cupy(image)
    assert array_module(np.zeros(1), image) is cupy
    assert ndimage_module(cupy).__name__ == "cupyx.scipy.ndimage"
    assert isinstance(to_numpy(image), np.ndarray)
